-- kmsring schema version 3: the due index and paged listing. Records
-- written before it carry no due time: each is given the Unix epoch, "look
-- at once", so that the first scheduler pass reads each key once and
-- writes its real due time.
ALTER TABLE kmsring_keys ADD COLUMN due timestamptz;
UPDATE kmsring_keys SET due = 'epoch';

CREATE INDEX kmsring_keys_due ON kmsring_keys (due, key_id COLLATE "C") WHERE due IS NOT NULL;
CREATE INDEX kmsring_keys_id_c ON kmsring_keys (key_id COLLATE "C");
CREATE INDEX kmsring_aliases_c ON kmsring_aliases (alias COLLATE "C");
