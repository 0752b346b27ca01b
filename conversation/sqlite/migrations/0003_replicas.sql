-- Replica heartbeats: the processes alive on one database, so that they
-- can split a workspace's rate limits between them.

-- One lease per process (an owner, as in claims), until expires_at. Few
-- rows, read whole: no index but the key.
CREATE TABLE replicas (
	owner      TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL -- Unix microseconds, by the store's clock
) WITHOUT ROWID;
