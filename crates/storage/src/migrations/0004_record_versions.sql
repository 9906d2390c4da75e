-- Ochre store, format version 4: a per-collection version of the records, raised by every
-- commit that writes one of them (the store adds one per commit) and by a trigger on every
-- updated record row (so an edit made outside Ochre counts too), so a file derived from the
-- records can tell whether they changed since. See docs/format/sqlite.md.
ALTER TABLE collections ADD COLUMN record_version INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER records_updated AFTER UPDATE ON records BEGIN
    UPDATE collections SET record_version = record_version + 1
    WHERE key = NEW.rowid >> 40 OR key = OLD.rowid >> 40;
END;
