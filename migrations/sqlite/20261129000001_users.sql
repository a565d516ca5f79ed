-- Users who can sign in. Timestamps are seconds since the Unix epoch (UTC).
CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL,
    email          TEXT,
    full_name      TEXT,
    password_hash  TEXT    NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- Space-separated scopes the user may be granted.
    scopes         TEXT    NOT NULL DEFAULT '',
    -- Bumped whenever every outstanding token of the user must stop working.
    token_version  INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);
