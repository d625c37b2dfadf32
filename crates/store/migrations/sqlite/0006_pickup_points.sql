-- Pickup points and lockers: a carrier-agnostic network of digital centres, neighbourhood
-- stores, fuel stations and lockers. An order may be addressed to one; its operator checks the
-- parcel in and hands it over against the buyer's one-time code.
CREATE TABLE pickup_points (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, place_id BIGINT NOT NULL REFERENCES places(id),
  lat REAL NOT NULL, lng REAL NOT NULL, plus_code TEXT NOT NULL, slots BIGINT NOT NULL,
  hours TEXT NOT NULL, hold_days BIGINT NOT NULL, fee_minor BIGINT NOT NULL,
  operator_id BIGINT REFERENCES users(id), active BIGINT NOT NULL DEFAULT 1, created_at BIGINT NOT NULL
);
ALTER TABLE orders ADD COLUMN pickup_point_id BIGINT REFERENCES pickup_points(id);
ALTER TABLE orders ADD COLUMN checked_in_at BIGINT;
CREATE INDEX orders_pickup ON orders(pickup_point_id, state);
