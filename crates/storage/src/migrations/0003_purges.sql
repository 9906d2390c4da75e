-- Ochre store, format version 3: collections whose records are still being removed.
-- See docs/format/sqlite.md.
CREATE TABLE purges (
    key INTEGER PRIMARY KEY
);
