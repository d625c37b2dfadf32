-- How many active listings hold each word (in any field), kept exact: every write takes the
-- listing's old words away and adds its new ones. A search for one common word with no filter
-- then knows it passes the count's cap without counting. Filled for existing catalogues by a
-- one-time recount at start (the `search_counted` settings row says when it is whole).
ALTER TABLE search_vocab ADD COLUMN listings BIGINT NOT NULL DEFAULT 0;
-- New entries wait in GIN's pending list until it is merged; every search reads that list
-- whole. A quarter of the default 4 MB keeps that read short between merges.
ALTER INDEX products_search SET (gin_pending_list_limit = 1024);
