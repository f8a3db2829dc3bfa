-- Fair claims across profiles, ad-account throttles shared by every worker, and what the
-- connector knows about each profile's token.

-- A claim visits the profiles that have unfinished jobs (one probe of this index per profile,
-- however many jobs each has queued) and takes the oldest due job of the profile it chose.
CREATE INDEX jobs_profile_due_idx ON jobs (profile_id, due_at, id)
    WHERE status IN ('queued', 'running');

-- A profile's running jobs, the fairness key of a claim, without reading its queued ones.
CREATE INDEX jobs_running_idx ON jobs (profile_id, lease_expires_at) WHERE status = 'running';

-- Facebook throttles an ad account as a whole: while a row's `until` is in the future, no
-- worker claims a job of a profile on that ad account. A later `until` extends the hold, an
-- earlier one never shortens it; rows whose `until` passed mean nothing and are deleted lazily.
CREATE TABLE ad_account_throttles (
    ad_account_id TEXT PRIMARY KEY,
    until         INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX profiles_ad_account_idx ON profiles (ad_account_id);

-- What debug_token said about the stored token (token_issued_at exists since the first schema).
-- Rows of earlier releases read as "never expires, no scopes known" until re-authorised.
ALTER TABLE profiles ADD COLUMN token_expires_at INTEGER;
ALTER TABLE profiles ADD COLUMN token_data_access_expires_at INTEGER;
ALTER TABLE profiles ADD COLUMN token_scopes TEXT NOT NULL DEFAULT '[]';
