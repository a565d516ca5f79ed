-- Mirrors migrations/sqlite/20261129000002_token_lifecycle.sql (BIGINT for INTEGER).
-- Refresh tokens, stored only as SHA-256 hashes. Every token descends from
-- one login: its family. A token is spent once (used_at); presenting a spent
-- token revokes the whole family.
CREATE TABLE refresh_tokens (
    id                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash         TEXT    NOT NULL,
    family_id          TEXT    NOT NULL,
    user_id            BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope              TEXT    NOT NULL,
    client_id          TEXT    NOT NULL,
    -- The user's token_version when issued; a later version voids it.
    token_version      BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    -- The absolute end of the family, whatever the rotations.
    family_expires_at  BIGINT  NOT NULL,
    used_at            BIGINT,
    revoked_at         BIGINT,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_expiry_idx ON refresh_tokens (family_expires_at);

-- Access tokens revoked before their expiry, by jti; pruned once expired.
CREATE TABLE revoked_access_tokens (
    jti         TEXT    PRIMARY KEY,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry_idx ON revoked_access_tokens (expires_at);
