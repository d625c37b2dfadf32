-- The reference sent to the payment provider is random and kept with the payment, unique
-- forever: a restored backup hands out payment ids again, and a reference made from the id
-- would meet the provider's old payment. Payments made before keep the reference they were
-- sent with.
ALTER TABLE payments ADD COLUMN reference TEXT;
UPDATE payments SET reference = 'tianguis-payment-' || id;
CREATE UNIQUE INDEX payments_reference ON payments(reference);
-- Provider answers refused because they were about another payment (reference, amount or
-- currency not ours), for officials to look into; never applied.
CREATE TABLE provider_mismatches (
  id BIGSERIAL PRIMARY KEY, payment_id BIGINT REFERENCES payments(id), source TEXT NOT NULL,
  field TEXT NOT NULL, ours TEXT NOT NULL, theirs TEXT NOT NULL, provider_ref TEXT, found_at BIGINT NOT NULL
);
