-- The catalogue at national scale: SKUs (a seller's re-import updates instead of duplicating),
-- Swahili names, and search in PostgreSQL's own engine (tsvector under GIN) with a vocabulary
-- for typos.
ALTER TABLE products ADD COLUMN sku TEXT;
ALTER TABLE products ADD COLUMN name_sw TEXT;
-- Names (A), description (B), shop (C); written by the store as a tsvector literal.
ALTER TABLE products ADD COLUMN search_doc tsvector;
CREATE UNIQUE INDEX products_seller_sku ON products(seller_id, sku);
CREATE INDEX products_price ON products(price_minor, id);
CREATE INDEX products_category_id ON products(category_id, id);
CREATE INDEX products_seller_id ON products(seller_id, id);
CREATE INDEX products_search ON products USING GIN (search_doc);
-- Byte order ("C"), so a range reads a prefix whatever the database's locale.
-- Each word the index holds, with how many listings hold it first in their names, their
-- description or their shop's name (upper bounds: counted on every write): a tier's size is
-- known before it is read (so the plan fits it), and a correction proposes the word most
-- listings hold.
CREATE TABLE search_vocab (term TEXT COLLATE "C" PRIMARY KEY, in_name BIGINT NOT NULL DEFAULT 0,
  in_description BIGINT NOT NULL DEFAULT 0, in_shop BIGINT NOT NULL DEFAULT 0);
CREATE TABLE search_vocab_deletes (variant TEXT COLLATE "C" NOT NULL, term TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (variant, term));
DROP TABLE product_terms;
