-- Rate limits every server process sees: one row per counted event under a key such as
-- "login-fail:phone:+52..." or "code:ip:10.0.0.1"; counted over a sliding window, swept daily.
CREATE TABLE rate_events (key TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX rate_events_key ON rate_events(key, at);
-- Accounts made for someone else (walk-in buyers, sellers onboarded at a centre) have no
-- password of their own until the person claims the account with a texted code.
ALTER TABLE users ADD COLUMN password_set BIGINT NOT NULL DEFAULT 1;
-- A digest of the request an idempotency key was first used for: the same key with another
-- request is refused instead of answered with the first result.
ALTER TABLE idempotency ADD COLUMN fingerprint TEXT;
-- A photographed signed paper consent form; never served publicly.
CREATE TABLE consent_forms (
  id BIGSERIAL PRIMARY KEY, bytes BYTEA NOT NULL, content_type TEXT NOT NULL, uploaded_by BIGINT NOT NULL REFERENCES users(id),
  created_at BIGINT NOT NULL
);
ALTER TABLE mandates ADD COLUMN consent_form_id BIGINT REFERENCES consent_forms(id);
-- Texted one-time codes are made when the text is sent and only their hash is kept; a code
-- waiting in the outbox is a reference to its phone_codes row, never the code.
ALTER TABLE outbox ADD COLUMN code_id BIGINT REFERENCES phone_codes(id);
