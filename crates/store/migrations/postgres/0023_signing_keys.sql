-- The marketplace's Ed25519 signing keys for the credentials it issues (training certificates,
-- sales statements). One in use (retired_at NULL); the ones before it stay, retired, so what
-- they signed still verifies and they stay published. A key found compromised is revoked:
-- what it signed no longer counts.
CREATE TABLE signing_keys (
  id BIGSERIAL PRIMARY KEY,
  public_multibase TEXT NOT NULL UNIQUE,
  private_multibase TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  retired_at BIGINT,
  revoked_at BIGINT
);
