-- Ochre store, format version 2: per-collection counters. See docs/format/sqlite.md.
ALTER TABLE collections ADD COLUMN forks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN total_ops INTEGER NOT NULL DEFAULT 0;
