-- Mandates: what an agent may do for a seller they onboarded, with the seller's consent (a code
-- sent to their phone, or a signed paper form's reference), revocable; every action logged.
CREATE TABLE mandates (
  id BIGSERIAL PRIMARY KEY, agent_id BIGINT NOT NULL REFERENCES users(id), seller_id BIGINT NOT NULL REFERENCES sellers(id),
  scope TEXT NOT NULL, consent_method TEXT NOT NULL, consent_ref TEXT NOT NULL, consented_by TEXT NOT NULL,
  consented_at BIGINT NOT NULL, revoked_at BIGINT, created_at BIGINT NOT NULL
);
CREATE INDEX mandates_agent ON mandates(agent_id);
CREATE INDEX mandates_seller ON mandates(seller_id);
CREATE TABLE mandate_events (
  id BIGSERIAL PRIMARY KEY, mandate_id BIGINT NOT NULL REFERENCES mandates(id), actor_id BIGINT REFERENCES users(id),
  action TEXT NOT NULL, detail TEXT NOT NULL, at BIGINT NOT NULL
);
CREATE INDEX mandate_events_mandate ON mandate_events(mandate_id);
-- One-time codes sent by text: consent to a mandate, or claiming an account.
CREATE TABLE phone_codes (
  id BIGSERIAL PRIMARY KEY, purpose TEXT NOT NULL, phone TEXT NOT NULL, requested_by BIGINT REFERENCES users(id),
  code_hash TEXT NOT NULL, expires_at BIGINT NOT NULL, failures BIGINT NOT NULL DEFAULT 0, used_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX phone_codes_phone ON phone_codes(purpose, phone, id);
