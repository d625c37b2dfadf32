-- The catalogue at national scale: SKUs (a seller's re-import updates instead of duplicating),
-- Swahili names, and search in SQLite's own engine (FTS5) with a vocabulary for typos.
ALTER TABLE products ADD COLUMN sku TEXT;
ALTER TABLE products ADD COLUMN name_sw TEXT;
CREATE UNIQUE INDEX products_seller_sku ON products(seller_id, sku);
CREATE INDEX products_price ON products(price_minor, id);
-- Contentless: the words live in the index only; rowid = products.id. The ascii tokenizer keeps
-- every non-ASCII character inside its word (the words are folded in Rust before they get here).
CREATE VIRTUAL TABLE product_fts USING fts5(name, description, shop, content='', contentless_delete=1,
  tokenize='ascii', prefix='2 3');
-- Each word the index holds, with how many listings hold it first in their names, their
-- description or their shop's name (upper bounds: counted on every write): a tier's size is
-- known before it is read, and a correction proposes the word most listings hold.
CREATE TABLE search_vocab (term TEXT PRIMARY KEY, in_name BIGINT NOT NULL DEFAULT 0,
  in_description BIGINT NOT NULL DEFAULT 0, in_shop BIGINT NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE search_vocab_deletes (variant TEXT NOT NULL, term TEXT NOT NULL, PRIMARY KEY (variant, term)) WITHOUT ROWID;
DROP TABLE product_terms;
-- Merge index segments eight at a time rather than four: half the rewriting while a catalogue
-- is imported, for a few more segments to read per query.
INSERT INTO product_fts(product_fts, rank) VALUES ('automerge', 8);
