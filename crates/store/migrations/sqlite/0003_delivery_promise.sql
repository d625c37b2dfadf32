-- The delivery promise: days per place (falling back to the district, then the setting
-- delivery_days), each order's due time from checkout, and when it was delivered.
ALTER TABLE places ADD COLUMN delivery_days BIGINT;
ALTER TABLE orders ADD COLUMN due_at BIGINT;
ALTER TABLE orders ADD COLUMN delivered_at BIGINT;
CREATE INDEX orders_due ON orders(due_at);
