-- The address registry (Sao Paulo's Rotas Rurais): properties imported by officials, each with a
-- plus-code address, found at checkout by the owner's phone.
CREATE TABLE address_registry (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, owner_phone TEXT NOT NULL, lat REAL NOT NULL, lng REAL NOT NULL,
  plus_code TEXT NOT NULL, created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX address_registry_owner_code ON address_registry(owner_phone, plus_code);
