-- Mirrors migrations/sqlite/20261129000003_login_throttle.sql (BIGINT for INTEGER).
-- Failed-login counters, shared by every instance on the database. A key
-- names one account at one address ("pair") or one address ("address").
CREATE TABLE login_failures (
    throttle_key       TEXT    PRIMARY KEY,
    failures           BIGINT  NOT NULL,
    window_started_at  BIGINT  NOT NULL,
    last_failure_at    BIGINT  NOT NULL,
    -- Seconds since the epoch until which attempts are refused (0: none).
    locked_until       BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX login_failures_last_failure_idx ON login_failures (last_failure_at);
