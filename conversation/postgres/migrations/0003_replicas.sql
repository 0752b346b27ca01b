-- Replica heartbeats: the replicas alive on one database, so that they
-- can split a workspace's rate limits between them.

-- One lease per replica (an owner, as in claims), until expires_at. Few
-- rows, read whole: no index but the key.
CREATE TABLE replicas (
	owner      text PRIMARY KEY,
	expires_at timestamptz NOT NULL -- by the database's clock, now()
);
