-- Plus-code addresses: places have a reference point (to recover short codes such as
-- "8C4X+2F Santa Ana"), and a checkout keeps the full code of its delivery address.
ALTER TABLE places ADD COLUMN lat REAL;
ALTER TABLE places ADD COLUMN lng REAL;
ALTER TABLE checkouts ADD COLUMN plus_code TEXT;
