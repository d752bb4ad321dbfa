-- kmsring schema version 1.
CREATE TABLE kmsring_keys (
	key_id   text PRIMARY KEY,
	revision bigint NOT NULL,
	aliases  text[] NOT NULL DEFAULT '{}',
	data     bytea NOT NULL
);

CREATE TABLE kmsring_aliases (
	alias  text PRIMARY KEY,
	key_id text NOT NULL REFERENCES kmsring_keys (key_id)
);

CREATE INDEX kmsring_aliases_key_id ON kmsring_aliases (key_id);

CREATE TABLE kmsring_versions (
	key_id text NOT NULL REFERENCES kmsring_keys (key_id),
	number bigint NOT NULL CHECK (number BETWEEN 1 AND 4294967295),
	data   bytea NOT NULL,
	PRIMARY KEY (key_id, number)
);
