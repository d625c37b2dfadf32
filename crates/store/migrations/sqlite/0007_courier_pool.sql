-- The courier pool: carriers (the post office, local couriers, motorbike and bicycle riders),
-- each one vehicle with a capacity in parcels, a working area (a base and a radius) and a shift.
-- A packed order becomes a delivery job (one per order, kept through a redirect); route plans are
-- solved by a worker and their stops kept for the printable route sheet.
CREATE TABLE carriers (
  id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL UNIQUE REFERENCES users(id), name TEXT NOT NULL,
  kind TEXT NOT NULL, capacity BIGINT NOT NULL, base_lat REAL NOT NULL, base_lng REAL NOT NULL,
  base_plus_code TEXT NOT NULL, radius_km BIGINT NOT NULL, shift_start_min BIGINT NOT NULL,
  shift_end_min BIGINT NOT NULL, speed_kmh BIGINT NOT NULL, active BIGINT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL
);
CREATE TABLE delivery_jobs (
  id INTEGER PRIMARY KEY, order_id BIGINT NOT NULL UNIQUE REFERENCES orders(id), state TEXT NOT NULL,
  carrier_id BIGINT REFERENCES carriers(id), parcels BIGINT NOT NULL,
  pickup_lat REAL NOT NULL, pickup_lng REAL NOT NULL, drop_lat REAL NOT NULL, drop_lng REAL NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX delivery_jobs_state ON delivery_jobs(state);
CREATE INDEX delivery_jobs_carrier ON delivery_jobs(carrier_id, state);
CREATE TABLE delivery_events (
  id INTEGER PRIMARY KEY, job_id BIGINT NOT NULL REFERENCES delivery_jobs(id), action TEXT NOT NULL,
  from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL, user_id BIGINT REFERENCES users(id),
  at BIGINT NOT NULL
);
CREATE INDEX delivery_events_job ON delivery_events(job_id);
CREATE TABLE route_plans (
  id INTEGER PRIMARY KEY, carrier_id BIGINT NOT NULL REFERENCES carriers(id), day TEXT NOT NULL,
  morning_key TEXT UNIQUE, status TEXT NOT NULL, budget_ms BIGINT NOT NULL, locked_until BIGINT,
  started_at BIGINT, finished_at BIGINT, distance_m BIGINT, end_min BIGINT, unassigned TEXT NOT NULL DEFAULT '',
  error TEXT, created_at BIGINT NOT NULL
);
CREATE INDEX route_plans_status ON route_plans(status, id);
CREATE INDEX route_plans_carrier ON route_plans(carrier_id, id);
CREATE TABLE route_stops (
  plan_id BIGINT NOT NULL REFERENCES route_plans(id), seq BIGINT NOT NULL,
  job_id BIGINT NOT NULL REFERENCES delivery_jobs(id), kind TEXT NOT NULL,
  arrival_min BIGINT NOT NULL, departure_min BIGINT NOT NULL, PRIMARY KEY (plan_id, seq)
);
