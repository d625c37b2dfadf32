-- Phones are kept as E.164, read in the marketplace's country (the `country` setting). When
-- numbers stored before are normalised, two accounts that turn out to hold one number are not
-- merged: the older keeps it and the other is reported here for an official to settle; a number
-- that cannot be read is reported too.
CREATE TABLE phone_reports (
  id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id), other_user_id BIGINT REFERENCES users(id),
  stored TEXT NOT NULL, e164 TEXT, reason TEXT NOT NULL, found_at BIGINT NOT NULL,
  settled_by BIGINT REFERENCES users(id), settled_at BIGINT
);
CREATE INDEX phone_reports_open ON phone_reports(settled_at, id);
