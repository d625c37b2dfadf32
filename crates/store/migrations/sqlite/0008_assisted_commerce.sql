-- Assisted commerce at digital centres: agents belong to a centre (a pickup point of kind
-- "centre"); a checkout records who placed it on whose behalf and where, and carries a tracking
-- code for buyers without an account; commission rules; cash hand-overs; the notification outbox.
ALTER TABLE users ADD COLUMN centre_id BIGINT REFERENCES pickup_points(id);
ALTER TABLE pickup_points ADD COLUMN contact TEXT NOT NULL DEFAULT '';
ALTER TABLE checkouts ADD COLUMN agent_id BIGINT REFERENCES users(id);
ALTER TABLE checkouts ADD COLUMN centre_id BIGINT REFERENCES pickup_points(id);
ALTER TABLE checkouts ADD COLUMN tracking_code TEXT;
CREATE UNIQUE INDEX checkouts_tracking ON checkouts(tracking_code);
CREATE INDEX checkouts_centre ON checkouts(centre_id);
CREATE TABLE commission_rules (
  id INTEGER PRIMARY KEY, centre_id BIGINT REFERENCES pickup_points(id), category_id BIGINT REFERENCES categories(id),
  basis TEXT NOT NULL, value BIGINT NOT NULL, cap_minor BIGINT, source TEXT NOT NULL,
  active BIGINT NOT NULL DEFAULT 1, created_at BIGINT NOT NULL
);
CREATE TABLE handovers (
  id INTEGER PRIMARY KEY, holder_id BIGINT NOT NULL REFERENCES users(id), expected_minor BIGINT NOT NULL,
  declared_minor BIGINT NOT NULL, currency TEXT NOT NULL, channel TEXT NOT NULL, reference TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX handovers_holder ON handovers(holder_id, id);
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY, channel TEXT NOT NULL, to_phone TEXT NOT NULL, template TEXT NOT NULL,
  args TEXT NOT NULL, lang TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
  run_at BIGINT NOT NULL, locked_until BIGINT, provider_ref TEXT, last_error TEXT,
  created_at BIGINT NOT NULL, sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox(status, run_at);
