-- How many active listings hold each word (in any field), kept exact: every write takes the
-- listing's old words away and adds its new ones. A search for one common word with no filter
-- then knows it passes the count's cap without counting. Filled for existing catalogues by a
-- one-time recount at start (the `search_counted` settings row says when it is whole).
ALTER TABLE search_vocab ADD COLUMN listings BIGINT NOT NULL DEFAULT 0;
