-- tianguis core schema (PostgreSQL). Times are epoch milliseconds; booleans are 0/1 integers;
-- money is integer minor units next to its currency. Keep in step with sqlite/0001_core.sql.
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE places (
  id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, parent_id BIGINT REFERENCES places(id)
);
CREATE TABLE categories (
  id BIGSERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name_en TEXT NOT NULL, name_es TEXT NOT NULL, name_bn TEXT
);
CREATE TABLE users (
  id BIGSERIAL PRIMARY KEY, phone TEXT NOT NULL UNIQUE, email TEXT, name TEXT NOT NULL,
  password_hash TEXT NOT NULL, role TEXT NOT NULL, place_id BIGINT REFERENCES places(id),
  active BIGINT NOT NULL DEFAULT 1, created_at BIGINT NOT NULL
);
CREATE TABLE sellers (
  id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL UNIQUE REFERENCES users(id), shop_name TEXT NOT NULL,
  place_id BIGINT NOT NULL REFERENCES places(id), journey_level BIGINT NOT NULL DEFAULT 0,
  women_led BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL
);
CREATE TABLE photos (id BIGSERIAL PRIMARY KEY, bytes BYTEA NOT NULL, content_type TEXT NOT NULL,
  width BIGINT NOT NULL, height BIGINT NOT NULL);
CREATE TABLE products (
  id BIGSERIAL PRIMARY KEY, seller_id BIGINT NOT NULL REFERENCES sellers(id),
  category_id BIGINT NOT NULL REFERENCES categories(id), name_en TEXT NOT NULL, name_es TEXT, name_bn TEXT,
  description TEXT NOT NULL DEFAULT '', price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
  currency TEXT NOT NULL, stock BIGINT NOT NULL CHECK (stock >= 0), photo_id BIGINT REFERENCES photos(id),
  active BIGINT NOT NULL DEFAULT 1, created_at BIGINT NOT NULL
);
CREATE INDEX products_seller ON products(seller_id);
CREATE INDEX products_category ON products(category_id);
CREATE TABLE product_terms (term TEXT NOT NULL, product_id BIGINT NOT NULL REFERENCES products(id),
  PRIMARY KEY (term, product_id));
CREATE INDEX product_terms_product ON product_terms(product_id, term);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, user_id BIGINT REFERENCES users(id), csrf TEXT NOT NULL, lang TEXT,
  expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL
);
CREATE TABLE cart_lines (session_id TEXT NOT NULL, product_id BIGINT NOT NULL REFERENCES products(id),
  quantity BIGINT NOT NULL, PRIMARY KEY (session_id, product_id));
CREATE TABLE api_tokens (token_hash TEXT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE idempotency (scope TEXT NOT NULL, key TEXT NOT NULL, response TEXT, created_at BIGINT NOT NULL,
  PRIMARY KEY (scope, key));
CREATE TABLE checkouts (
  id BIGSERIAL PRIMARY KEY, buyer_id BIGINT NOT NULL REFERENCES users(id), total_minor BIGINT NOT NULL,
  currency TEXT NOT NULL, method TEXT NOT NULL, address TEXT NOT NULL, phone TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE orders (
  id BIGSERIAL PRIMARY KEY, checkout_id BIGINT NOT NULL REFERENCES checkouts(id),
  buyer_id BIGINT NOT NULL REFERENCES users(id), seller_id BIGINT NOT NULL REFERENCES sellers(id),
  state TEXT NOT NULL, subtotal_minor BIGINT NOT NULL, delivery_minor BIGINT NOT NULL,
  total_minor BIGINT NOT NULL, currency TEXT NOT NULL, fee_bps BIGINT NOT NULL,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX orders_buyer ON orders(buyer_id);
CREATE INDEX orders_seller ON orders(seller_id, state);
CREATE INDEX orders_state ON orders(state);
CREATE TABLE order_lines (order_id BIGINT NOT NULL REFERENCES orders(id), product_id BIGINT NOT NULL REFERENCES products(id),
  quantity BIGINT NOT NULL, unit_price_minor BIGINT NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE TABLE order_events (
  id BIGSERIAL PRIMARY KEY, order_id BIGINT NOT NULL REFERENCES orders(id), transition TEXT NOT NULL,
  from_state TEXT NOT NULL, to_state TEXT NOT NULL, actor TEXT NOT NULL, actor_user_id BIGINT,
  reason TEXT NOT NULL DEFAULT '', at BIGINT NOT NULL
);
CREATE INDEX order_events_order ON order_events(order_id);
CREATE TABLE payments (
  id BIGSERIAL PRIMARY KEY, checkout_id BIGINT NOT NULL REFERENCES checkouts(id), method TEXT NOT NULL,
  provider_ref TEXT UNIQUE, status TEXT NOT NULL, amount_minor BIGINT NOT NULL, currency TEXT NOT NULL,
  payer_phone TEXT, collected_by BIGINT REFERENCES users(id), created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
);
CREATE INDEX payments_checkout ON payments(checkout_id);
CREATE TABLE ledger_txns (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, order_id BIGINT, created_at BIGINT NOT NULL);
CREATE TABLE postings (id BIGSERIAL PRIMARY KEY, txn_id BIGINT NOT NULL REFERENCES ledger_txns(id),
  account TEXT NOT NULL, currency TEXT NOT NULL, amount_minor BIGINT NOT NULL);
CREATE INDEX postings_account ON postings(account);
CREATE TABLE accounts (account TEXT NOT NULL, currency TEXT NOT NULL, balance_minor BIGINT NOT NULL,
  may_go_negative BIGINT NOT NULL, PRIMARY KEY (account, currency));
CREATE TABLE jobs (
  id BIGSERIAL PRIMARY KEY, order_id BIGINT NOT NULL REFERENCES orders(id), transition TEXT NOT NULL,
  run_at BIGINT NOT NULL, status TEXT NOT NULL, locked_until BIGINT, attempts BIGINT NOT NULL DEFAULT 0,
  last_error TEXT, created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(status, run_at);
