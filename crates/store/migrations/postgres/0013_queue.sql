-- One job queue for everything that runs later or elsewhere: order timers, texts to send,
-- mobile-money requests and status checks, route plans. Each job has a kind, a lane (the
-- worker loop that runs it: timers never wait behind a slow provider), a payload, a lease, a
-- retry cap with exponential backoff, and ends done, skipped, or dead (given up; officials
-- see and may retry it).
CREATE TABLE queue (
  id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, lane TEXT NOT NULL, payload TEXT NOT NULL,
  run_at BIGINT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
  max_attempts BIGINT NOT NULL, locked_until BIGINT, locked_by TEXT, last_error TEXT,
  created_at BIGINT NOT NULL, finished_at BIGINT
);
CREATE INDEX queue_due ON queue(lane, status, run_at);
CREATE INDEX queue_status ON queue(status, kind);
-- The order timers so far, as they were.
INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, locked_until, last_error, created_at)
  SELECT 'order_timer', 'timers', '{"order_id":' || order_id || ',"transition":"' || transition || '"}',
         run_at, status, attempts, 10, locked_until, last_error, created_at FROM jobs;
DROP TABLE jobs;
-- Texts not yet sent, and route plans not yet solved, become jobs too.
INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, created_at)
  SELECT 'sms', 'providers', '{"outbox_id":' || id || '}', run_at, 'pending', attempts, 6, created_at
  FROM outbox WHERE status = 'pending';
INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, created_at)
  SELECT 'route_plan', 'planner', '{"plan_id":' || id || '}', created_at, 'pending', 0, 3, created_at
  FROM route_plans WHERE status IN ('queued', 'running');
