-- Plus-code addresses: places have a reference point (to recover short codes such as
-- "8C4X+2F Santa Ana"), and a checkout keeps the full code of its delivery address.
ALTER TABLE places ADD COLUMN lat DOUBLE PRECISION;
ALTER TABLE places ADD COLUMN lng DOUBLE PRECISION;
ALTER TABLE checkouts ADD COLUMN plus_code TEXT;
