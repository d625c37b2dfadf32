-- Proof of delivery: a one-time code issued when the order ships, shown to the buyer only, and
-- asked of whoever records the delivery. Wrong tries are counted; five lock it.
ALTER TABLE orders ADD COLUMN delivery_code TEXT;
ALTER TABLE orders ADD COLUMN delivery_code_failures BIGINT NOT NULL DEFAULT 0;
