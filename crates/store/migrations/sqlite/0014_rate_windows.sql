-- Rate limits count in fixed windows: one row per key and window, incremented in place, instead
-- of a row per event counted over a sliding window (a count that grew with the traffic it
-- limited). A refused request's increment rolls back with it.
DROP TABLE rate_events;
CREATE TABLE rate_counts (
  key TEXT NOT NULL, window_start BIGINT NOT NULL, n BIGINT NOT NULL,
  PRIMARY KEY (key, window_start)
);
