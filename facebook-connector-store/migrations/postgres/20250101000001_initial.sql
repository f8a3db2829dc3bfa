-- Initial schema (PostgreSQL). Times are timestamptz; ids are uuid; structured values jsonb.

CREATE TABLE profiles (
    id                           UUID PRIMARY KEY,
    company_id                   BIGINT NOT NULL,
    ad_account_id                TEXT NOT NULL,
    ad_account_name              TEXT NOT NULL,
    business_id                  TEXT,
    business_name                TEXT,
    custom_audience_tos_accepted BOOLEAN NOT NULL,
    audience_id                  TEXT,
    audience_name                TEXT,
    -- AES-256-GCM ciphertext, `<key id>:<base64>`; the profile id is the associated data
    token                        TEXT NOT NULL,
    token_issued_at              TIMESTAMPTZ,
    facebook_user_id             TEXT NOT NULL,
    facebook_user_name           TEXT NOT NULL,
    delivery_state               TEXT NOT NULL CHECK (delivery_state IN ('ok', 'needs_reauth')),
    reauth_reason                TEXT,
    reauth_since                 TIMESTAMPTZ,
    archived_at                  TIMESTAMPTZ,
    created_at                   TIMESTAMPTZ NOT NULL,
    updated_at                   TIMESTAMPTZ NOT NULL,
    CHECK ((delivery_state = 'needs_reauth') = (reauth_since IS NOT NULL))
);
CREATE INDEX profiles_company_idx ON profiles (company_id, created_at);

-- One row per delivery target. A row without audience_id is only a creation claim.
CREATE TABLE settings (
    id          TEXT PRIMARY KEY,
    profile_id  UUID NOT NULL,
    audience_id TEXT,
    claim_owner TEXT,
    claim_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE commands (
    revision    BIGINT PRIMARY KEY CHECK (revision >= 0),
    event       JSONB NOT NULL,
    settings_id TEXT NOT NULL,
    profile_id  UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX commands_profile_idx ON commands (profile_id, revision);

-- One job per command file; the job row is also the file's status entry (status, last_error,
-- counters), so every job transition updates the command's file in the same statement.
CREATE TABLE jobs (
    id               UUID PRIMARY KEY,
    revision         BIGINT NOT NULL REFERENCES commands (revision),
    position         INTEGER NOT NULL,
    profile_id       UUID NOT NULL,
    settings_id      TEXT NOT NULL,
    file             JSONB NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'paused', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           TIMESTAMPTZ NOT NULL,
    -- when the job next needs a worker: run_at while queued, the lease expiry while running
    due_at           TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_generation BIGINT NOT NULL,
    lease_expires_at TIMESTAMPTZ,
    checkpoint       JSONB,
    counters         JSONB NOT NULL,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (revision, position)
);
-- Claiming reads this partial index in due_at order: it only holds unfinished jobs, so its size
-- (and the O(log n) claim) does not grow with the millions of delivered/failed rows.
CREATE INDEX jobs_claimable_idx ON jobs (due_at, id) WHERE status IN ('queued', 'running');
-- pause/resume/archive by profile, and listing a profile's jobs
CREATE INDEX jobs_profile_status_idx ON jobs (profile_id, status);

CREATE TABLE event_cursor (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    revision   BIGINT NOT NULL CHECK (revision >= 0),
    updated_at TIMESTAMPTZ NOT NULL
);
