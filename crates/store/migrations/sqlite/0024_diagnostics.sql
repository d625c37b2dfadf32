-- A firm's readiness diagnostics, each take kept (progress between takes is the programme's
-- impact measure): the questionnaire and version answered, the answers, and the scores.
CREATE TABLE diagnostic_takes (
  id INTEGER PRIMARY KEY,
  seller_id BIGINT NOT NULL REFERENCES sellers(id),
  taken_by BIGINT NOT NULL REFERENCES users(id),
  questionnaire TEXT NOT NULL,
  version BIGINT NOT NULL,
  answers TEXT NOT NULL,
  scores TEXT NOT NULL,
  overall BIGINT NOT NULL,
  level BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX diagnostic_takes_seller ON diagnostic_takes(seller_id, id);
