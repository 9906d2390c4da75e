-- Ochre store, format version 4: a per-collection version of the records, set to a new random
-- value by every commit that writes one of them (the store sets it once per commit) and by
-- triggers on every inserted or updated record row (so a change made outside Ochre counts too),
-- so a file derived from the records can tell whether they changed since. See
-- docs/format/sqlite.md.
ALTER TABLE collections ADD COLUMN record_version INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER records_inserted AFTER INSERT ON records BEGIN
    UPDATE collections SET record_version = random() WHERE key = NEW.rowid >> 40;
END;
CREATE TRIGGER records_updated AFTER UPDATE ON records BEGIN
    UPDATE collections SET record_version = random()
    WHERE key = NEW.rowid >> 40 OR key = OLD.rowid >> 40;
END;
