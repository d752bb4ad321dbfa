-- kmsring schema version 2: the audit log.
CREATE TABLE kmsring_audit (
	seq       bigint PRIMARY KEY CHECK (seq >= 1),
	time      timestamptz NOT NULL,
	key_id    text NOT NULL,
	operation text NOT NULL,
	data      bytea NOT NULL
);

CREATE INDEX kmsring_audit_key ON kmsring_audit (key_id, seq);
CREATE INDEX kmsring_audit_time ON kmsring_audit (time);
