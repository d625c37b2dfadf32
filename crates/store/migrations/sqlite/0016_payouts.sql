-- Payouts: what the platform owes people leaves in batches. One official prepares a batch (the
-- money of each line is set aside from the payee's balance at once, so nobody is paid more than
-- they hold and no balance is in two batches), another approves it, and each line goes to the
-- payee's wallet by the provider's disbursement API or is counted out in cash at a centre.
-- A line's reference is its idempotency key with the provider: a retried batch never pays twice.
CREATE TABLE payout_batches (
  id INTEGER PRIMARY KEY, currency TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
  run_key TEXT UNIQUE, prepared_by BIGINT REFERENCES users(id), approved_by BIGINT REFERENCES users(id),
  total_minor BIGINT NOT NULL, line_count BIGINT NOT NULL,
  created_at BIGINT NOT NULL, approved_at BIGINT, finished_at BIGINT
);
CREATE TABLE payout_lines (
  id INTEGER PRIMARY KEY, batch_id BIGINT NOT NULL REFERENCES payout_batches(id),
  payee TEXT NOT NULL, user_id BIGINT NOT NULL REFERENCES users(id),
  amount_minor BIGINT NOT NULL, currency TEXT NOT NULL,
  channel TEXT NOT NULL, destination TEXT NOT NULL, status TEXT NOT NULL,
  reference TEXT NOT NULL UNIQUE, provider_ref TEXT, failure TEXT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX payout_lines_batch ON payout_lines(batch_id);
CREATE INDEX payout_lines_payee ON payout_lines(payee, status);
-- Where each payee wants to be paid (none on file: mobile money to their own phone).
CREATE TABLE payout_methods (
  payee TEXT PRIMARY KEY, channel TEXT NOT NULL, destination TEXT NOT NULL,
  updated_by BIGINT REFERENCES users(id), updated_at BIGINT NOT NULL
);
-- The language a person reads their texts in (the one they last chose on the site).
ALTER TABLE users ADD COLUMN lang TEXT;
