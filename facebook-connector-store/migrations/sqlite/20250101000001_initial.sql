-- Initial schema (SQLite). Times are INTEGER unix microseconds (UTC, order-preserving); ids are
-- 16-byte uuid BLOBs; structured values JSON TEXT. Tables are STRICT so a wrong type is an error.

CREATE TABLE profiles (
    id                           BLOB PRIMARY KEY,
    company_id                   INTEGER NOT NULL,
    ad_account_id                TEXT NOT NULL,
    ad_account_name              TEXT NOT NULL,
    business_id                  TEXT,
    business_name                TEXT,
    custom_audience_tos_accepted INTEGER NOT NULL,
    audience_id                  TEXT,
    audience_name                TEXT,
    -- AES-256-GCM ciphertext, `<key id>:<base64>`; the profile id is the associated data
    token                        TEXT NOT NULL,
    token_issued_at              INTEGER,
    facebook_user_id             TEXT NOT NULL,
    facebook_user_name           TEXT NOT NULL,
    delivery_state               TEXT NOT NULL CHECK (delivery_state IN ('ok', 'needs_reauth')),
    reauth_reason                TEXT,
    reauth_since                 INTEGER,
    archived_at                  INTEGER,
    created_at                   INTEGER NOT NULL,
    updated_at                   INTEGER NOT NULL,
    CHECK ((delivery_state = 'needs_reauth') = (reauth_since IS NOT NULL))
) STRICT;
CREATE INDEX profiles_company_idx ON profiles (company_id, created_at);

-- One row per delivery target. A row without audience_id is only a creation claim.
CREATE TABLE settings (
    id          TEXT PRIMARY KEY,
    profile_id  BLOB NOT NULL,
    audience_id TEXT,
    claim_owner TEXT,
    claim_until INTEGER,
    created_at  INTEGER,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE commands (
    revision    INTEGER PRIMARY KEY CHECK (revision >= 0),
    event       TEXT NOT NULL,
    settings_id TEXT NOT NULL,
    profile_id  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX commands_profile_idx ON commands (profile_id, revision);

-- One job per command file; the job row is also the file's status entry (status, last_error,
-- counters), so every job transition updates the command's file in the same statement.
CREATE TABLE jobs (
    id               BLOB PRIMARY KEY,
    revision         INTEGER NOT NULL REFERENCES commands (revision),
    position         INTEGER NOT NULL,
    profile_id       BLOB NOT NULL,
    settings_id      TEXT NOT NULL,
    file             TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'running', 'paused', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    -- when the job next needs a worker: run_at while queued, the lease expiry while running
    due_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_generation INTEGER NOT NULL,
    lease_expires_at INTEGER,
    checkpoint       TEXT,
    counters         TEXT NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (revision, position)
) STRICT;
-- Claiming reads this partial index in due_at order: it only holds unfinished jobs, so its size
-- (and the O(log n) claim) does not grow with the millions of delivered/failed rows.
CREATE INDEX jobs_claimable_idx ON jobs (due_at, id) WHERE status IN ('queued', 'running');
-- pause/resume/archive by profile, and listing a profile's jobs
CREATE INDEX jobs_profile_status_idx ON jobs (profile_id, status);

CREATE TABLE event_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    revision   INTEGER NOT NULL CHECK (revision >= 0),
    updated_at INTEGER NOT NULL
) STRICT;
