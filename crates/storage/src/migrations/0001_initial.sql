-- Ochre store, format version 1. See docs/format/sqlite.md.
CREATE TABLE tenants (
    name          TEXT PRIMARY KEY,
    resource_name TEXT
);
CREATE TABLE databases (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE collections (
    key           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    database_id   TEXT NOT NULL,
    name          TEXT NOT NULL,
    metadata      TEXT,
    configuration TEXT NOT NULL,
    dimension     INTEGER,
    UNIQUE (database_id, name)
);
-- rowid = collection key * 2^40 + the record's sequence number (storage order).
CREATE TABLE records (
    rowid     INTEGER PRIMARY KEY,
    id        TEXT NOT NULL,
    embedding BLOB NOT NULL,
    document  TEXT,
    uri       TEXT,
    metadata  TEXT
);
