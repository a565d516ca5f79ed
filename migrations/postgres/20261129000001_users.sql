-- Users who can sign in. Mirrors migrations/sqlite/20261129000001_users.sql:
-- the same columns, the same constraint names, timestamps as seconds since
-- the Unix epoch (UTC) in a BIGINT, like SQLite's INTEGER.
CREATE TABLE users (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "C" collation: byte-wise comparison and order, as SQLite's BINARY, so
    -- `user list` sorts the same whatever the database's default collation.
    username       TEXT    COLLATE "C" NOT NULL,
    email          TEXT,
    full_name      TEXT,
    password_hash  TEXT    NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    -- Space-separated scopes the user may be granted.
    scopes         TEXT    NOT NULL DEFAULT '',
    -- Bumped whenever every outstanding token of the user must stop working.
    token_version  BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);
