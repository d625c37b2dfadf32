-- Mobile-money payments in flight when the queue arrived (0013) become its jobs: one the
-- provider never took is asked for, one it took but never settled is asked about. A payment
-- that already has its job is left alone.
INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, created_at)
  SELECT 'momo_request', 'providers', '{"payment_id":' || p.id || '}', p.created_at, 'pending', 0, 12, p.created_at
  FROM payments p
  WHERE p.method = 'mobile_money' AND p.status = 'pending' AND p.provider_ref IS NULL
    AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.kind = 'momo_request' AND q.payload = '{"payment_id":' || p.id || '}');
INSERT INTO queue (kind, lane, payload, run_at, status, attempts, max_attempts, created_at)
  SELECT 'momo_status', 'providers', '{"payment_id":' || p.id || '}', p.updated_at, 'pending', 0, 12, p.updated_at
  FROM payments p
  WHERE p.method = 'mobile_money' AND p.status = 'pending' AND p.provider_ref IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.kind = 'momo_status' AND q.payload = '{"payment_id":' || p.id || '}' AND q.status = 'pending');
