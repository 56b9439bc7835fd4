-- authflow schema, PostgreSQL flavour.
-- Timestamps are timestamptz written at millisecond precision (the store truncates), so
-- values read back equal to what SQLite returns. JSON columns are jsonb.
-- Lists are returned in creation order: ORDER BY created_at, seq (seq breaks ties
-- between rows created in the same millisecond, e.g. in one change set).
-- org_id columns are deliberately not foreign keys: the trait has no way to delete an
-- organization, and the engine validates the organization before writing.

CREATE TABLE organizations (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT        NOT NULL PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO organizations (id, name, created_at)
VALUES ('default', 'default', date_trunc('milliseconds', now()));

CREATE TABLE users (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    id              TEXT        NOT NULL PRIMARY KEY,
    org_id          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    disabled        BOOLEAN     NOT NULL DEFAULT FALSE,
    disabled_reason TEXT,
    name            TEXT
);
CREATE INDEX users_by_org ON users (org_id, created_at, seq);

-- The UNIQUE constraint is what makes login IDs unique under concurrent signups.
CREATE TABLE identities (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    id            TEXT        NOT NULL PRIMARY KEY,
    user_id       TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id        TEXT        NOT NULL,
    login_id_key  TEXT        NOT NULL,
    login_id_type TEXT        NOT NULL,
    original      TEXT        NOT NULL,
    normalized    TEXT        NOT NULL,
    unique_key    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT identities_login_id_unique UNIQUE (org_id, login_id_key, unique_key)
);
CREATE INDEX identities_by_user ON identities (user_id);

CREATE TABLE authenticators (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY,
    id                 TEXT        NOT NULL PRIMARY KEY,
    user_id            TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind               TEXT        NOT NULL,
    authenticator_type TEXT        NOT NULL,
    data               JSONB       NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX authenticators_by_user ON authenticators (user_id);

-- Verifying the same claim twice is not an error: the primary key deduplicates.
CREATE TABLE verified_claims (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id    TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    value      TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, name, value)
);

CREATE TABLE password_history (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_history_by_user ON password_history (user_id, created_at);

CREATE TABLE recovery_codes (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,
    id          TEXT        NOT NULL PRIMARY KEY,
    user_id     TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

CREATE TABLE sessions (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    id               TEXT        NOT NULL PRIMARY KEY,
    user_id          TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id           TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    token_hash       TEXT        NOT NULL,
    amr              TEXT[]      NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    last_accessed_at TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    revoked_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX sessions_by_token_hash ON sessions (token_hash);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_keys (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT        NOT NULL PRIMARY KEY,
    org_id     TEXT        NOT NULL,
    key_hash   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_by_org ON api_keys (org_id);

CREATE TABLE server_secrets (
    name       TEXT        NOT NULL PRIMARY KEY,
    value      TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Not tied to users by a foreign key: the audit trail outlives a deleted user.
CREATE TABLE audit_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT        NOT NULL PRIMARY KEY,
    org_id     TEXT        NOT NULL,
    user_id    TEXT,
    event_type TEXT        NOT NULL,
    payload    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, created_at);

-- StateStore when no Redis is configured. A row with expires_at <= now is absent.
CREATE TABLE ephemeral (
    key        TEXT        NOT NULL PRIMARY KEY,
    value      TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ephemeral_by_expiry ON ephemeral (expires_at);

-- GCRA buckets: tat is the theoretical arrival time in unix microseconds. A tat in the
-- past is a full bucket, so the row is garbage once tat <= now.
CREATE TABLE rate_buckets (
    key TEXT   NOT NULL PRIMARY KEY,
    tat BIGINT NOT NULL
);
CREATE INDEX rate_buckets_by_tat ON rate_buckets (tat);
