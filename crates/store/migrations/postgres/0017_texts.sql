-- Texts about an order show on its page too; each records whether the person cannot do without
-- it (the delivery code, money in or out: sent even after STOP), and, once sent, how many parts
-- it took and what the gateway charged. A person who replied STOP gets only essential texts.
ALTER TABLE outbox ADD COLUMN order_id BIGINT;
ALTER TABLE outbox ADD COLUMN essential BIGINT NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN parts BIGINT;
ALTER TABLE outbox ADD COLUMN cost TEXT;
CREATE INDEX outbox_order ON outbox(order_id);
ALTER TABLE users ADD COLUMN sms_stop BIGINT NOT NULL DEFAULT 0;
