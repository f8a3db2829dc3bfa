//! An in-process fake Graph API on a real socket (`127.0.0.1`, random port), for tests and the
//! demo.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use facebook_marketing::testkit::{FakeGraph, Endpoint, Fault};
//! let fake = FakeGraph::start().await?;
//! let seed = fake.seed(); // a user, a long-lived token and a usable ad account
//! let audience = fake.add_audience(&seed.ad_account, "buyers");
//! let client = fake.client(); // a GraphClient pointed at the fake, fast retries
//! fake.fail(Endpoint::AddMembers, 2, Fault::throttle(80003, 0));
//! // ... upload with `client`, then:
//! let rows = fake.rows(&audience);
//! # let _ = (client, rows); Ok(()) }
//! ```
//!
//! What it checks, like Facebook does:
//! * user-token calls need a known, valid token and the right `appsecret_proof` (else 190 or
//!   100); app-token calls (`debug_token`, batch) need `{app_id}|{app_secret}`;
//! * uploads: known schema keys without duplicates, every row as wide as the schema, 1 to
//!   10,000 rows, hashed keys as 64 lowercase hex (or empty), MADID not hashed; rows with a bad
//!   value count as `num_invalid_entries`;
//! * sessions per ad account: `session_id` > 0, `batch_seq` ≥ 1, a repeated `batch_seq` is
//!   answered again without storing its rows twice; after the batch with `last_batch_flag`
//!   every further batch of the session (a re-sent one too) gets 2650/1870159 ("session
//!   already finished"), and 90 minutes after its first batch ([`SESSION_TIMEOUT`], tokio's
//!   clock) or after [`FakeGraph::expire_session`] 2650/1870158 ("session timed out"); like
//!   Facebook, an upload with a session answers `num_received` / `num_invalid_entries` as the
//!   session's running totals (without a session: this request's numbers);
//! * `debug_token` answers `expires_at` (60 days for long-lived tokens) and
//!   `data_access_expires_at` (90 days);
//! * audiences: ≤ 500 per ad account, description ≤ 100 characters, the ad account must be the
//!   user's, have a business and accepted Custom Audience terms.
//!
//! Faults ([`FakeGraph::fail`]) are consumed in the order they were added, per endpoint:
//! Graph errors (e.g. [`Fault::update_in_progress`]), throttles with usage headers and a wait
//! estimate ([`Fault::throttle_for`]), HTML 5xx, latency, and "processed, then failed".
//! Latency can also be set for every call or per endpoint ([`FakeGraph::set_latency_for`]).
//! What it received is kept for inspection: every stored row per audience, each session's
//! batches, totals and upload calls ([`FakeGraph::session`]), and call counts per endpoint.

mod server;
mod upload;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use facebook_connector_core::domain::{AdAccountId, AudienceId, FacebookUserId};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::client::GraphClient;
use crate::config::{GraphConfig, LimiterConfig, RetryPolicy};

/// The fake app's id.
pub const APP_ID: &str = "100200300";
/// The fake app's secret.
pub const APP_SECRET: &str = "fake-app-secret-0123456789";

/// The calls the fake answers, for faults and call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// Any call.
    Any,
    /// `GET /debug_token`.
    DebugToken,
    /// `GET /me`.
    Me,
    /// `GET /oauth/access_token`.
    ExchangeToken,
    /// `GET /me/adaccounts`.
    AdAccounts,
    /// `GET /act_{id}`.
    AdAccount,
    /// `GET /?ids=` and `GET /{audience_id}`.
    Audiences,
    /// `POST /act_{id}/customaudiences`.
    CreateAudience,
    /// `POST /{audience_id}/users`.
    AddMembers,
    /// `DELETE /{audience_id}/users`.
    RemoveMembers,
    /// `POST /` with `batch`.
    Batch,
    /// `DELETE /{user_id}/permissions` (outside a batch).
    RevokePermissions,
    /// Anything else.
    Unknown,
}

/// An injected failure.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// A Graph error object.
    Graph {
        /// HTTP status.
        status: u16,
        /// Graph code.
        code: i64,
        /// Graph subcode.
        subcode: Option<i64>,
        /// `is_transient`.
        is_transient: bool,
    },
    /// A throttling error (e.g. 4, 17, 80003) with usage headers at 100% and this
    /// `estimated_time_to_regain_access` (sent in minutes, fractions kept; zero = 0).
    ThrottleFor {
        /// Graph code.
        code: i64,
        /// The wait estimate.
        regain: Duration,
    },
    /// An HTTP error status with an HTML body (no Graph error).
    ServerError {
        /// HTTP status (5xx).
        status: u16,
    },
    /// Wait, then answer normally.
    Latency(Duration),
    /// Process the request normally, then answer 500 with code 2: the caller cannot know it
    /// worked (proves retried uploads are not counted twice).
    AcceptThenFail,
}

/// How long an upload session stays open after its first batch (Facebook: 90 minutes);
/// later batches get 2650/1870158. Measured on tokio's clock, so tests advance paused time.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(90 * 60);

impl Fault {
    /// A Graph error with the usual status for its code (400; 500 for 1 and 2).
    pub fn graph(code: i64, subcode: Option<i64>) -> Fault {
        Fault::Graph {
            status: if matches!(code, 1 | 2) { 500 } else { 400 },
            code,
            subcode,
            is_transient: matches!(code, 1 | 2),
        }
    }

    /// Throttling with `code` and a wait estimate in minutes (0 = none).
    pub fn throttle(code: i64, regain_minutes: u32) -> Fault {
        Fault::ThrottleFor {
            code,
            regain: Duration::from_secs(u64::from(regain_minutes) * 60),
        }
    }

    /// Throttling with `code` and a wait estimate of any length (sent in fractional minutes,
    /// as Facebook does, e.g. 0.01 for 0.6 s; zero = an estimate of 0).
    pub fn throttle_for(code: i64, regain: Duration) -> Fault {
        Fault::ThrottleFor { code, regain }
    }

    /// 2650/1870145: "an update of this audience is in progress".
    pub fn update_in_progress() -> Fault {
        Fault::graph(2650, Some(1870145))
    }
}

/// A token to issue.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// Long-lived (60 days) or short-lived (2 hours).
    pub long_lived: bool,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            long_lived: false,
            scopes: vec!["ads_management".into(), "business_management".into()],
        }
    }
}

/// An ad account to create.
#[derive(Clone, Debug)]
pub struct AdAccountSpec {
    /// Display name.
    pub name: String,
    /// Owning business `(id, name)`.
    pub business: Option<(String, String)>,
    /// Whether the Custom Audience terms are accepted.
    pub tos_accepted: bool,
}

impl Default for AdAccountSpec {
    fn default() -> Self {
        AdAccountSpec {
            name: "Fake ad account".into(),
            business: Some(("700800900".into(), "Fake business".into())),
            tos_accepted: true,
        }
    }
}

/// What [`FakeGraph::seed`] created.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The user.
    pub user: FacebookUserId,
    /// A long-lived token of the user with both required scopes.
    pub token: SecretString,
    /// A usable ad account of the user.
    pub ad_account: AdAccountId,
}

/// One upload batch as the fake stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// The session, when the upload had one.
    pub session_id: Option<u64>,
    /// The batch number, when the upload had a session.
    pub batch_seq: Option<u32>,
    /// The schema keys.
    pub schema: Vec<String>,
    /// The rows as received (none when the fake only counts them: [`FakeGraph::keep_rows`]).
    pub rows: Vec<Vec<String>>,
    /// Rows counted invalid.
    pub num_invalid_entries: u64,
}

/// An audience as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeAudience {
    /// Id.
    pub id: AudienceId,
    /// Ad account.
    pub ad_account: AdAccountId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Added batches, in order (repeated batches of a session stored once).
    pub batches: Vec<StoredBatch>,
    /// Removal batches, in order.
    pub removals: Vec<StoredBatch>,
}

/// A session as the fake holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeSession {
    /// The audience it uploads to.
    pub audience_id: AudienceId,
    /// Batch numbers seen, ascending.
    pub batches_seen: Vec<u32>,
    /// Rows received over the session (each batch counted once).
    pub num_received: u64,
    /// Invalid rows over the session.
    pub num_invalid_entries: u64,
    /// Whether the last batch arrived.
    pub closed: bool,
    /// Whether the session timed out (90 minutes after its first batch, or
    /// [`FakeGraph::expire_session`]).
    pub expired: bool,
    /// Upload requests received for the session, repeats and refused ones included.
    pub upload_calls: usize,
    /// The caller's estimate, as last sent.
    pub estimated_num_total: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenRec {
    pub(crate) user_id: String,
    pub(crate) long_lived: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) data_access_expires_at: i64,
    pub(crate) valid: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct AccountRec {
    pub(crate) name: String,
    pub(crate) business: Option<(String, String)>,
    pub(crate) tos_accepted: bool,
    pub(crate) users: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct AudienceRec {
    pub(crate) account: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) time_created: i64,
    pub(crate) batches: Vec<StoredBatch>,
    pub(crate) removals: Vec<StoredBatch>,
    pub(crate) fail_first_upload_803: bool,
    pub(crate) flagged: bool,
    pub(crate) upload_requests: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct SessionRec {
    pub(crate) audience_id: String,
    pub(crate) receipts: BTreeMap<u32, (u64, u64)>,
    pub(crate) closed: bool,
    pub(crate) estimated_num_total: Option<u64>,
    pub(crate) started_at: tokio::time::Instant,
    pub(crate) expired: bool,
    pub(crate) requests: usize,
}

impl SessionRec {
    pub(crate) fn is_expired(&self) -> bool {
        self.expired || self.started_at.elapsed() > SESSION_TIMEOUT
    }
}

#[derive(Clone, Debug)]
pub(crate) struct FaultRec {
    pub(crate) endpoint: Endpoint,
    pub(crate) remaining: Option<u32>,
    pub(crate) fault: Fault,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_id: u64,
    pub(crate) users: BTreeMap<String, String>,
    pub(crate) tokens: HashMap<String, TokenRec>,
    pub(crate) accounts: BTreeMap<String, AccountRec>,
    pub(crate) audiences: BTreeMap<String, AudienceRec>,
    pub(crate) sessions: HashMap<(String, u64), SessionRec>,
    pub(crate) faults: Vec<FaultRec>,
    pub(crate) revoke_failures: HashMap<String, u32>,
    pub(crate) latency: Duration,
    pub(crate) endpoint_latency: HashMap<Endpoint, Duration>,
    pub(crate) usage: Option<(u32, u32)>,
    pub(crate) revoked: Vec<String>,
    pub(crate) calls: BTreeMap<Endpoint, usize>,
    pub(crate) foreign_paging: bool,
    pub(crate) max_batch_seen: usize,
    /// Uploads keep their counts but not their rows ([`FakeGraph::keep_rows`]).
    pub(crate) counts_only: bool,
}

impl State {
    pub(crate) fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 23_840_000_000_000 + self.next_id)
    }

    /// Consumes the first matching fault.
    pub(crate) fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let pos = self.faults.iter().position(|f| {
            (f.endpoint == endpoint || f.endpoint == Endpoint::Any)
                && f.remaining.is_none_or(|r| r > 0)
        })?;
        let rec = &mut self.faults[pos];
        let fault = rec.fault.clone();
        if let Some(r) = rec.remaining.as_mut() {
            *r -= 1;
            if *r == 0 {
                self.faults.remove(pos);
            }
        }
        Some(fault)
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) base_url: Url,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The running fake. Stops when dropped.
pub struct FakeGraph {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGraph")
            .field("base_url", &self.shared.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGraph {
    /// Starts the fake on `127.0.0.1` and a free port.
    pub async fn start() -> std::io::Result<FakeGraph> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{addr}/")).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            base_url,
        });
        let router = server::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "fake graph api stopped");
            }
        });
        Ok(FakeGraph { shared, task })
    }

    /// The base URL (without the version), e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// A client configuration for this fake: its app credentials, fast retries and limiter,
    /// a 5 s timeout.
    pub fn config(&self) -> GraphConfig {
        GraphConfig::new(APP_ID, SecretString::from(APP_SECRET.to_owned()))
            .with_base_url(self.base_url())
            .with_timeout(Duration::from_secs(5))
            .with_retry(RetryPolicy::fast())
            .with_limiter(LimiterConfig::fast())
    }

    /// A client for [`FakeGraph::config`].
    #[allow(clippy::expect_used)] // the fake's own configuration is valid
    pub fn client(&self) -> GraphClient {
        GraphClient::new(self.config()).expect("the fake's client configuration is valid")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // ------------------------------------------------------------ setup

    /// Adds a user.
    #[allow(clippy::expect_used)] // generated ids are never empty
    pub fn add_user(&self, name: &str) -> FacebookUserId {
        let mut s = self.lock();
        let id = s.fresh_id();
        s.users.insert(id.clone(), name.to_owned());
        FacebookUserId::new(id).expect("generated user id")
    }

    /// Issues a token to `user`.
    pub fn issue_token(&self, user: &FacebookUserId, spec: TokenSpec) -> SecretString {
        let mut s = self.lock();
        issue_token(&mut s, user.as_str(), spec.long_lived, spec.scopes)
    }

    /// Adds an ad account usable by `user`.
    #[allow(clippy::expect_used)] // generated ids are digits
    pub fn add_ad_account(&self, user: &FacebookUserId, spec: AdAccountSpec) -> AdAccountId {
        let mut s = self.lock();
        let id = format!("act_{}", s.fresh_id());
        s.accounts.insert(
            id.clone(),
            AccountRec {
                name: spec.name,
                business: spec.business,
                tos_accepted: spec.tos_accepted,
                users: BTreeSet::from([user.as_str().to_owned()]),
            },
        );
        AdAccountId::parse(&id).expect("generated ad account id")
    }

    /// Lets another user use an ad account.
    pub fn grant_ad_account(&self, user: &FacebookUserId, account: &AdAccountId) {
        if let Some(a) = self.lock().accounts.get_mut(account.as_str()) {
            a.users.insert(user.as_str().to_owned());
        }
    }

    /// A user with a long-lived token and a usable ad account.
    pub fn seed(&self) -> Seed {
        let user = self.add_user("Fake User");
        let token = self.issue_token(
            &user,
            TokenSpec {
                long_lived: true,
                ..TokenSpec::default()
            },
        );
        let ad_account = self.add_ad_account(&user, AdAccountSpec::default());
        Seed {
            user,
            token,
            ad_account,
        }
    }

    /// Adds an audience to an ad account (no limit check).
    #[allow(clippy::expect_used)] // generated ids are digits
    pub fn add_audience(&self, account: &AdAccountId, name: &str) -> AudienceId {
        let mut s = self.lock();
        let id = create_audience(&mut s, account.as_str(), name, "");
        AudienceId::parse(&id).expect("generated audience id")
    }

    /// Deletes an audience (lookups no longer find it).
    pub fn delete_audience(&self, id: &AudienceId) {
        self.lock().audiences.remove(id.as_str());
    }

    // ------------------------------------------------------------ faults

    /// Makes the next `times` calls to `endpoint` fail with `fault`.
    pub fn fail(&self, endpoint: Endpoint, times: u32, fault: Fault) {
        if times > 0 {
            self.lock().faults.push(FaultRec {
                endpoint,
                remaining: Some(times),
                fault,
            });
        }
    }

    /// Makes every call to `endpoint` fail with `fault` until [`FakeGraph::clear_faults`].
    pub fn fail_always(&self, endpoint: Endpoint, fault: Fault) {
        self.lock().faults.push(FaultRec {
            endpoint,
            remaining: None,
            fault,
        });
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// From now on the token is rejected with 190 (as if expired or revoked).
    pub fn invalidate_token(&self, token: &SecretString) {
        if let Some(t) = self.lock().tokens.get_mut(token.expose_secret()) {
            t.valid = false;
        }
    }

    /// The first upload request to this audience fails with 803 (propagation race).
    pub fn fail_first_upload_with_803(&self, audience: &AudienceId) {
        if let Some(a) = self.lock().audiences.get_mut(audience.as_str()) {
            a.fail_first_upload_803 = true;
        }
    }

    /// Flags the audience: uploads fail with 100/1713230.
    pub fn flag_audience(&self, audience: &AudienceId) {
        if let Some(a) = self.lock().audiences.get_mut(audience.as_str()) {
            a.flagged = true;
        }
    }

    /// Every response reports these usage percentages (app, business).
    pub fn set_usage(&self, app_percent: u32, business_percent: u32) {
        self.lock().usage = Some((app_percent, business_percent));
    }

    /// Every response is delayed by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Responses to `endpoint` are delayed by `latency` (instead of [`FakeGraph::set_latency`]'s),
    /// e.g. uploads answered after 50 ms for a benchmark. Concurrent requests wait in parallel.
    pub fn set_latency_for(&self, endpoint: Endpoint, latency: Duration) {
        self.lock().endpoint_latency.insert(endpoint, latency);
    }

    /// The session times out now: its further batches get 2650/1870158 (as Facebook does 90
    /// minutes after a session's first batch, see [`SESSION_TIMEOUT`]).
    pub fn expire_session(&self, account: &AdAccountId, session_id: u64) {
        if let Some(rec) = self
            .lock()
            .sessions
            .get_mut(&(account.as_str().to_owned(), session_id))
        {
            rec.expired = true;
        }
    }

    /// `paging.next` links point to another host (the client must not follow them).
    pub fn set_foreign_paging(&self, foreign: bool) {
        self.lock().foreign_paging = foreign;
    }

    /// In a batch, revoking this user's permissions fails transiently (a `null` answer)
    /// `times` times.
    pub fn fail_revoke(&self, user: &FacebookUserId, times: u32) {
        self.lock()
            .revoke_failures
            .insert(user.as_str().to_owned(), times);
    }

    // ------------------------------------------------------------ inspection

    /// The audience with its stored batches.
    #[allow(clippy::expect_used)] // stored ids are valid
    pub fn audience(&self, id: &AudienceId) -> Option<FakeAudience> {
        let s = self.lock();
        s.audiences.get(id.as_str()).map(|a| FakeAudience {
            id: id.clone(),
            ad_account: AdAccountId::parse(&a.account).expect("stored ad account id"),
            name: a.name.clone(),
            description: a.description.clone(),
            batches: a.batches.clone(),
            removals: a.removals.clone(),
        })
    }

    /// The audiences of an ad account.
    pub fn audiences_in(&self, account: &AdAccountId) -> Vec<FakeAudience> {
        let ids: Vec<String> = self
            .lock()
            .audiences
            .iter()
            .filter(|(_, a)| a.account == account.as_str())
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| AudienceId::parse(id).ok())
            .filter_map(|id| self.audience(&id))
            .collect()
    }

    /// Every row added to the audience, in order (each session batch once).
    pub fn rows(&self, audience: &AudienceId) -> Vec<Vec<String>> {
        self.audience(audience)
            .map(|a| a.batches.into_iter().flat_map(|b| b.rows).collect())
            .unwrap_or_default()
    }

    /// Whether uploads keep the rows they carry (the default) or only count them: long
    /// benchmark runs, which check counts and sessions, need not store millions of rows.
    pub fn keep_rows(&self, keep: bool) {
        self.lock().counts_only = !keep;
    }

    /// Drops the rows received so far (batches, sessions and counts stay): long benchmark
    /// runs keep only what they need to check.
    pub fn forget_rows(&self) {
        let mut state = self.lock();
        for audience in state.audiences.values_mut() {
            for batch in &mut audience.batches {
                batch.rows = Vec::new();
            }
        }
    }

    /// A session of an ad account.
    #[allow(clippy::expect_used)] // stored ids are valid
    pub fn session(&self, account: &AdAccountId, session_id: u64) -> Option<FakeSession> {
        let s = self.lock();
        s.sessions
            .get(&(account.as_str().to_owned(), session_id))
            .map(|r| FakeSession {
                audience_id: AudienceId::parse(&r.audience_id).expect("stored audience id"),
                batches_seen: r.receipts.keys().copied().collect(),
                num_received: r.receipts.values().map(|(n, _)| n).sum(),
                num_invalid_entries: r.receipts.values().map(|(_, i)| i).sum(),
                closed: r.closed,
                expired: r.is_expired(),
                upload_calls: r.requests,
                estimated_num_total: r.estimated_num_total,
            })
    }

    /// Users whose permissions were revoked, in order.
    pub fn revoked_users(&self) -> Vec<FacebookUserId> {
        self.lock()
            .revoked
            .iter()
            .filter_map(|u| FacebookUserId::new(u.clone()).ok())
            .collect()
    }

    /// Requests received for `endpoint` (all of them for [`Endpoint::Any`]).
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        let s = self.lock();
        if endpoint == Endpoint::Any {
            s.calls.values().sum()
        } else {
            s.calls.get(&endpoint).copied().unwrap_or(0)
        }
    }

    /// The largest batch request (number of operations) received.
    pub fn largest_batch(&self) -> usize {
        self.lock().max_batch_seen
    }

    /// Whether the fake knows the token, and whether it is long-lived.
    pub fn token_is_long_lived(&self, token: &SecretString) -> Option<bool> {
        self.lock()
            .tokens
            .get(token.expose_secret())
            .map(|t| t.long_lived)
    }
}

pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn issue_token(
    s: &mut State,
    user_id: &str,
    long_lived: bool,
    scopes: Vec<String>,
) -> SecretString {
    use rand::distr::{Alphanumeric, SampleString};
    let token = format!("EAAF{}", Alphanumeric.sample_string(&mut rand::rng(), 60));
    let now = now_unix();
    let ttl = if long_lived { 60 * 24 * 3600 } else { 2 * 3600 };
    s.tokens.insert(
        token.clone(),
        TokenRec {
            user_id: user_id.to_owned(),
            long_lived,
            scopes,
            issued_at: now,
            expires_at: now + ttl,
            // about 90 days after the user last used the app
            data_access_expires_at: now + 90 * 24 * 3600,
            valid: true,
        },
    );
    SecretString::from(token)
}

pub(crate) fn create_audience(
    s: &mut State,
    account: &str,
    name: &str,
    description: &str,
) -> String {
    let id = s.fresh_id();
    s.audiences.insert(
        id.clone(),
        AudienceRec {
            account: account.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            time_created: now_unix(),
            batches: Vec::new(),
            removals: Vec::new(),
            fail_first_upload_803: false,
            flagged: false,
            upload_requests: 0,
        },
    );
    id
}
