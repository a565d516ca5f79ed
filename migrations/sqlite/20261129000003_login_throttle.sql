-- Failed-login counters, shared by every instance on the database. A key
-- names one account at one address ("pair") or one address ("address").
CREATE TABLE login_failures (
    throttle_key       TEXT    PRIMARY KEY,
    failures           INTEGER NOT NULL,
    window_started_at  INTEGER NOT NULL,
    last_failure_at    INTEGER NOT NULL,
    -- Seconds since the epoch until which attempts are refused (0: none).
    locked_until       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX login_failures_last_failure_idx ON login_failures (last_failure_at);
