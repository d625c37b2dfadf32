-- Digital champions: each assigned two to four businesses, paid per business that reaches the
-- agreed milestone (the payment is a ledger transaction from the programme's budget).
CREATE TABLE champion_assignments (
  id BIGSERIAL PRIMARY KEY, champion_id BIGINT NOT NULL REFERENCES users(id), seller_id BIGINT NOT NULL REFERENCES sellers(id),
  milestone TEXT NOT NULL, bounty_minor BIGINT NOT NULL, currency TEXT NOT NULL, baseline_level BIGINT NOT NULL,
  assigned_at BIGINT NOT NULL, paid_at BIGINT, paid_txn BIGINT, UNIQUE (champion_id, seller_id)
);
CREATE INDEX champion_assignments_champion ON champion_assignments(champion_id);
