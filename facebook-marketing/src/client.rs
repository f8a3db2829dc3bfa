//! The Graph API client: one shared reqwest client (rustls with the ring provider), typed
//! calls, `appsecret_proof` on every user-token call, retries and the client-side limiter.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, Business, BusinessId, FacebookUser,
    FacebookUserId, LongLivedToken, TokenInfo,
};
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{BatchReceipt, UploadSession};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use crate::config::GraphConfig;
use crate::error::{ApiError, ErrorClass, GraphError, GraphErrorBody};
use crate::usage::{Limiter, Scope, parse_usage};

/// Fields asked for ad accounts.
pub const AD_ACCOUNT_FIELDS: &str = "id,name,business,user_tos_accepted";
/// Fields asked for audiences.
pub const AUDIENCE_FIELDS: &str = "id,account_id,name,description,time_created";
/// Page size of `/me/adaccounts`.
pub const AD_ACCOUNTS_PAGE_SIZE: u32 = 100;
/// Requests per batch call (Facebook's limit).
pub const MAX_BATCH_REQUESTS: usize = 50;
/// Ids per `?ids=` lookup.
pub const MAX_IDS_PER_LOOKUP: usize = 50;
/// Longest audience description Facebook accepts.
pub const MAX_DESCRIPTION_CHARS: usize = 100;
/// Pages followed at most (a guard against a paging loop).
const MAX_PAGES: usize = 1_000;
/// The shortest timeout of one attempt, even when the call's budget is almost spent.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// `appsecret_proof`: hex HMAC-SHA256 of the access token keyed with the app secret.
pub fn appsecret_proof(app_secret: &SecretString, access_token: &SecretString) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty proof
    // would only make Facebook reject the call.
    match Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(access_token.expose_secret().as_bytes());
            const_hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// An audience as `GET /?ids=` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudienceDetails {
    /// Audience id.
    pub id: AudienceId,
    /// The ad account's numeric id (without `act_`), when Facebook says.
    pub account_id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time, when Facebook says.
    pub time_created: Option<OffsetDateTime>,
}

impl From<AudienceDetails> for Audience {
    fn from(a: AudienceDetails) -> Self {
        Audience {
            id: a.id,
            name: a.name,
        }
    }
}

/// Who a call authenticates as.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// A user token, with `appsecret_proof`.
    User(&'a SecretString),
    /// The app token `{app_id}|{app_secret}`.
    App,
    /// No `access_token` (the token exchange authenticates with the client secret).
    Anonymous,
}

/// One call, re-sendable for retries.
struct Call<'a> {
    what: &'static str,
    method: Method,
    url: Url,
    params: Vec<(String, String)>,
    secret_params: Vec<(&'static str, &'a SecretString)>,
    auth: Auth<'a>,
    /// Retry 803 (an id that does not exist yet).
    retry_unknown_alias: bool,
    /// Whether sending twice is harmless; otherwise only errors that prove the request was
    /// not processed (throttling, policy block) are retried.
    idempotent: bool,
}

impl<'a> Call<'a> {
    fn new(what: &'static str, method: Method, url: Url, auth: Auth<'a>) -> Self {
        Call {
            what,
            method,
            url,
            params: Vec::new(),
            secret_params: Vec::new(),
            auth,
            retry_unknown_alias: false,
            idempotent: true,
        }
    }

    fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.params.push((key.to_owned(), value.into()));
        self
    }

    fn secret(mut self, key: &'static str, value: &'a SecretString) -> Self {
        self.secret_params.push((key, value));
        self
    }
}

struct Inner {
    http: reqwest::Client,
    cfg: GraphConfig,
    root: Url,
    app_token: SecretString,
    limiter: Limiter,
    sessions: SessionTallies,
}

/// The Graph API client. Cheap to clone (one shared connection pool); `Debug` never shows
/// secrets.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

fn tls_config() -> Result<rustls::ClientConfig, GraphError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
        GraphError::Setup {
            reason: "cannot load the platform's root certificates".into(),
            source: Some(Box::new(e)),
        }
    })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GraphError::Setup {
            reason: "no usable tls protocol versions".into(),
            source: Some(Box::new(e)),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl GraphClient {
    /// Builds the client (TLS with rustls and the ring provider).
    pub fn new(cfg: GraphConfig) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // The Graph API never redirects; following one could carry a token (in the query
            // or in a re-sent form body) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("facebook-connector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Setup {
                reason: "cannot build the http client".into(),
                source: Some(Box::new(e.without_url())),
            })?;
        Self::with_http_client(cfg, http)
    }

    /// Builds the client around an existing reqwest client (shared connection pool). The
    /// given client should not follow redirects (see [`GraphClient::new`]).
    pub fn with_http_client(cfg: GraphConfig, http: reqwest::Client) -> Result<Self, GraphError> {
        if cfg.api_version.is_empty()
            || !cfg
                .api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Err(GraphError::Setup {
                reason: format!("api version {:?} is not like v25.0", cfg.api_version),
                source: None,
            });
        }
        if cfg.base_url.cannot_be_a_base() || cfg.base_url.host_str().is_none() {
            return Err(GraphError::Setup {
                reason: "base url must be an http(s) url with a host".into(),
                source: None,
            });
        }
        let mut root = cfg.base_url.clone();
        root.set_query(None);
        root.set_fragment(None);
        let path = format!("{}/{}/", root.path().trim_end_matches('/'), cfg.api_version);
        root.set_path(&path);
        let app_token =
            SecretString::from(format!("{}|{}", cfg.app_id, cfg.app_secret.expose_secret()));
        let limiter = Limiter::new(cfg.limiter.clone());
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                cfg,
                root,
                app_token,
                limiter,
                sessions: SessionTallies::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// The versioned root every call is relative to, e.g. `https://graph.facebook.com/v25.0/`.
    pub fn root_url(&self) -> &Url {
        &self.inner.root
    }

    fn endpoint(&self, path: &str) -> Result<Url, GraphError> {
        self.inner.root.join(path).map_err(|e| GraphError::Setup {
            reason: format!("cannot form the url of {path}"),
            source: Some(Box::new(e)),
        })
    }

    /// The wait the caller should observe before trying again after `err`, when known.
    pub fn suggested_wait(&self, err: &GraphError) -> Option<Duration> {
        let retry = &self.inner.cfg.retry;
        match err.class() {
            ErrorClass::Throttled => Some(err.regain_access().unwrap_or(retry.throttle_backoff)),
            ErrorClass::PolicyBlock => Some(retry.policy_backoff),
            _ => None,
        }
    }

    // ---------------------------------------------------------------- sending

    async fn send_once(
        &self,
        call: &Call<'_>,
        scope: Scope,
        timeout: Duration,
    ) -> Result<Vec<u8>, GraphError> {
        let inner = &self.inner;
        let mut pairs: Vec<(&str, &str)> = call
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in &call.secret_params {
            pairs.push((k, v.expose_secret()));
        }
        let proof;
        let mut secrets: Vec<&str> = call
            .secret_params
            .iter()
            .map(|(_, v)| v.expose_secret())
            .collect();
        secrets.push(inner.cfg.app_secret.expose_secret());
        match call.auth {
            Auth::User(token) => {
                proof = appsecret_proof(&inner.cfg.app_secret, token);
                pairs.push(("access_token", token.expose_secret()));
                pairs.push(("appsecret_proof", &proof));
                secrets.push(token.expose_secret());
            }
            Auth::App => {
                pairs.push(("access_token", inner.app_token.expose_secret()));
                secrets.push(inner.app_token.expose_secret());
            }
            Auth::Anonymous => {}
        }
        let mut request = inner
            .http
            .request(call.method.clone(), call.url.clone())
            .timeout(timeout);
        request = if call.method == Method::GET {
            request.query(&pairs)
        } else {
            request.form(&pairs)
        };
        let response = request.send().await.map_err(GraphError::transport)?;
        let status = response.status();
        let usage = parse_usage(response.headers());
        inner.limiter.observe(scope, &usage);
        let trace_header = response
            .headers()
            .get("x-fb-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(GraphError::transport)?;
        debug!(
            call = call.what,
            status = status.as_u16(),
            usage_percent = usage.max_percent(),
            "graph api answered"
        );
        if status.is_success() {
            return Ok(body.to_vec());
        }
        #[derive(Deserialize)]
        struct Envelope {
            error: GraphErrorBody,
        }
        match serde_json::from_slice::<Envelope>(&body) {
            Ok(env) => {
                let mut env = env;
                if env.error.fbtrace_id.is_none() {
                    env.error.fbtrace_id = trace_header;
                }
                Err(GraphError::from_body(
                    status.as_u16(),
                    env.error,
                    usage.regain_access,
                    &secrets,
                ))
            }
            Err(_) => Err(GraphError::Http {
                status: status.as_u16(),
                fbtrace_id: trace_header,
            }),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let retry = &self.inner.cfg.retry;
        let exp = retry
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
            .min(retry.max_backoff);
        // jitter: somewhere between half and all of the exponential step
        exp.mul_f64(rand::random_range(0.5..=1.0))
    }

    fn retry_wait(&self, err: &GraphError, class: ErrorClass, attempt: u32) -> Duration {
        let retry = &self.inner.cfg.retry;
        match class {
            // a little jitter so that callers held back together do not return together
            ErrorClass::Throttled => err
                .regain_access()
                .unwrap_or_else(|| retry.throttle_backoff.max(self.backoff(attempt)))
                .mul_f64(rand::random_range(1.0..=1.1)),
            ErrorClass::PolicyBlock => retry.policy_backoff.mul_f64(rand::random_range(1.0..=1.1)),
            _ => self.backoff(attempt),
        }
    }

    /// Sends `call` with the limiter and the retry policy.
    async fn execute(&self, call: &Call<'_>) -> Result<Vec<u8>, GraphError> {
        let retry = &self.inner.cfg.retry;
        let scope = match call.auth {
            Auth::User(token) => self.inner.limiter.scope_of(token),
            Auth::App | Auth::Anonymous => Scope::App,
        };
        let start = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let pause = self.inner.limiter.delay(scope);
            if !pause.is_zero() {
                if start.elapsed() + pause > retry.max_total {
                    warn!(
                        call = call.what,
                        wait_ms = pause.as_millis() as u64,
                        "graph api usage too high, not calling now"
                    );
                    return Err(GraphError::Api(Box::new(ApiError {
                        status: 429,
                        code: 4,
                        subcode: None,
                        error_type: None,
                        message: "client-side limiter: usage limit reached".into(),
                        user_title: None,
                        user_message: None,
                        fbtrace_id: None,
                        is_transient: true,
                        regain_access: Some(pause),
                    })));
                }
                debug!(
                    call = call.what,
                    wait_ms = pause.as_millis() as u64,
                    "slowing down for graph api usage"
                );
                tokio::time::sleep(pause).await;
            }
            // one attempt never runs past the call's total budget
            let left = retry.max_total.saturating_sub(start.elapsed());
            let timeout = self.inner.cfg.timeout.min(left.max(MIN_ATTEMPT_TIMEOUT));
            let err = match self.send_once(call, scope, timeout).await {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            let class = err.class();
            if class == ErrorClass::Throttled
                && let Some(wait) = err.regain_access()
            {
                // app-level throttles (4, 341) hold back every call, the others this token's
                let block_scope = match err.code() {
                    Some(4 | 341) => Scope::App,
                    _ => scope,
                };
                self.inner.limiter.block_for(block_scope, wait);
            }
            let retryable = match class {
                ErrorClass::Throttled | ErrorClass::PolicyBlock => true,
                ErrorClass::Transient => call.idempotent,
                ErrorClass::UnknownAlias => call.retry_unknown_alias,
                _ => false,
            };
            if !retryable {
                debug!(
                    call = call.what,
                    code = err.code(),
                    subcode = err.subcode(),
                    fbtrace_id = err.fbtrace_id(),
                    class = ?class,
                    "graph api call failed"
                );
                return Err(err);
            }
            let wait = self.retry_wait(&err, class, attempt);
            if attempt >= retry.max_attempts.max(1) || start.elapsed() + wait > retry.max_total {
                warn!(
                    call = call.what,
                    attempts = attempt,
                    code = err.code(),
                    subcode = err.subcode(),
                    fbtrace_id = err.fbtrace_id(),
                    class = ?class,
                    "graph api call gave up"
                );
                return Err(err);
            }
            warn!(
                call = call.what,
                attempt,
                code = err.code(),
                subcode = err.subcode(),
                fbtrace_id = err.fbtrace_id(),
                class = ?class,
                wait_ms = wait.as_millis() as u64,
                "graph api call failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, GraphError> {
        let body = self.execute(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            // the parser's message can quote the response (paging links carry the token)
            let text = e.to_string();
            let quotes_secret = self
                .call_secrets(call)
                .iter()
                .any(|s| s.len() >= 8 && text.contains(s));
            GraphError::Decode {
                what: call.what,
                source: (!quotes_secret).then_some(e),
            }
        })
    }

    /// Every secret a call carries.
    fn call_secrets<'c>(&'c self, call: &'c Call<'_>) -> Vec<&'c str> {
        let mut secrets: Vec<&str> = call
            .secret_params
            .iter()
            .map(|(_, v)| v.expose_secret())
            .collect();
        secrets.push(self.inner.cfg.app_secret.expose_secret());
        match call.auth {
            Auth::User(token) => secrets.push(token.expose_secret()),
            Auth::App => secrets.push(self.inner.app_token.expose_secret()),
            Auth::Anonymous => {}
        }
        secrets
    }

    // ---------------------------------------------------------------- calls

    /// `GET /debug_token` with the app token. A token of another app is reported invalid.
    pub async fn debug_token(&self, token: &SecretString) -> Result<TokenInfo, GraphError> {
        let call = Call::new(
            "debug_token",
            Method::GET,
            self.endpoint("debug_token")?,
            Auth::App,
        )
        .secret("input_token", token);
        #[derive(Deserialize)]
        struct Envelope {
            data: DebugTokenData,
        }
        #[derive(Deserialize)]
        struct DebugTokenData {
            #[serde(default)]
            is_valid: bool,
            #[serde(default)]
            scopes: Vec<String>,
            #[serde(default)]
            issued_at: Option<i64>,
            #[serde(default)]
            expires_at: Option<i64>,
            #[serde(default, deserialize_with = "lenient_opt_string")]
            user_id: Option<String>,
            #[serde(default, deserialize_with = "lenient_opt_string")]
            app_id: Option<String>,
        }
        let env: Envelope = self.fetch(&call).await?;
        let d = env.data;
        let same_app = d
            .app_id
            .as_deref()
            .is_none_or(|a| a == self.inner.cfg.app_id);
        if !same_app {
            warn!("debug_token: the token belongs to another app");
        }
        Ok(TokenInfo {
            is_valid: d.is_valid && same_app,
            scopes: d.scopes,
            issued_at: unix_time(d.issued_at),
            expires_at: unix_time(d.expires_at),
            user_id: d.user_id.and_then(|u| FacebookUserId::new(u).ok()),
        })
    }

    /// `GET /me?fields=id,name`.
    pub async fn me(&self, token: &SecretString) -> Result<FacebookUser, GraphError> {
        let call = Call::new("me", Method::GET, self.endpoint("me")?, Auth::User(token))
            .param("fields", "id,name");
        #[derive(Deserialize)]
        struct Me {
            #[serde(deserialize_with = "lenient_string")]
            id: String,
            #[serde(default)]
            name: String,
        }
        let me: Me = self.fetch(&call).await?;
        let id = FacebookUserId::new(me.id).map_err(|_| GraphError::Decode {
            what: "me",
            source: None,
        })?;
        Ok(FacebookUser { id, name: me.name })
    }

    /// `GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived token.
    pub async fn exchange_long_lived(
        &self,
        token: &SecretString,
    ) -> Result<LongLivedToken, GraphError> {
        let app_secret = &self.inner.cfg.app_secret;
        let call = Call::new(
            "exchange_token",
            Method::GET,
            self.endpoint("oauth/access_token")?,
            Auth::Anonymous,
        )
        .param("grant_type", "fb_exchange_token")
        .param("client_id", self.inner.cfg.app_id.clone())
        .secret("client_secret", app_secret)
        .secret("fb_exchange_token", token);
        #[derive(Deserialize)]
        struct Exchange {
            access_token: SecretString,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = self.execute(&call).await?;
        // The parser's error is dropped: it could quote the response, which holds a token.
        let ex: Exchange = serde_json::from_slice(&body).map_err(|_| GraphError::Decode {
            what: "exchange_token",
            source: None,
        })?;
        Ok(LongLivedToken {
            token: ex.access_token,
            expires_in: ex.expires_in,
        })
    }

    /// Every ad account of the token's user (`GET /me/adaccounts`, following `paging.next`
    /// only on the configured host).
    pub async fn ad_accounts(&self, token: &SecretString) -> Result<Vec<AdAccount>, GraphError> {
        let mut call = Call::new(
            "ad_accounts",
            Method::GET,
            self.endpoint("me/adaccounts")?,
            Auth::User(token),
        )
        .param("fields", AD_ACCOUNT_FIELDS)
        .param("limit", AD_ACCOUNTS_PAGE_SIZE.to_string());
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<AdAccountNode>,
            #[serde(default)]
            paging: Option<Paging>,
        }
        #[derive(Deserialize)]
        struct Paging {
            #[serde(default)]
            next: Option<String>,
        }
        let mut out = Vec::new();
        for page_no in 1..=MAX_PAGES {
            let page: Page = self.fetch(&call).await?;
            out.extend(page.data.into_iter().filter_map(AdAccountNode::into_domain));
            let Some(next) = page.paging.and_then(|p| p.next) else {
                return Ok(out);
            };
            debug!(page = page_no, "following ad accounts paging link");
            call = self.follow(call, &next)?;
        }
        Err(GraphError::Decode {
            what: "ad_accounts (too many pages)",
            source: None,
        })
    }

    /// A call for a `paging.next` link: same auth, the link's query without its token.
    fn follow<'a>(&self, call: Call<'a>, next: &str) -> Result<Call<'a>, GraphError> {
        let url = Url::parse(next).map_err(|_| GraphError::ForeignPagingLink)?;
        let root = &self.inner.root;
        if url.scheme() != root.scheme()
            || url.host_str() != root.host_str()
            || url.port_or_known_default() != root.port_or_known_default()
        {
            return Err(GraphError::ForeignPagingLink);
        }
        let params: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut bare = url;
        bare.set_query(None);
        bare.set_fragment(None);
        Ok(Call {
            url: bare,
            params,
            ..call
        })
    }

    /// One ad account; `None` when it does not exist or the token cannot see it.
    pub async fn ad_account(
        &self,
        token: &SecretString,
        id: &AdAccountId,
    ) -> Result<Option<AdAccount>, GraphError> {
        let node: Option<AdAccountNode> = self
            .node_if_exists("ad_account", token, id.as_str(), AD_ACCOUNT_FIELDS)
            .await?;
        Ok(node.and_then(AdAccountNode::into_domain))
    }

    /// `GET /{id}?fields=…` as the user; `None` when the object does not exist or the token
    /// cannot see it.
    async fn node_if_exists<T: DeserializeOwned>(
        &self,
        what: &'static str,
        token: &SecretString,
        id: &str,
        fields: &'static str,
    ) -> Result<Option<T>, GraphError> {
        let call = Call::new(what, Method::GET, self.endpoint(id)?, Auth::User(token))
            .param("fields", fields);
        match self.fetch::<T>(&call).await {
            Ok(node) => Ok(Some(node)),
            Err(err) if is_missing_object(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The audiences among `ids` that exist (`GET /?ids=…`, 50 ids per call). When Facebook
    /// refuses a lookup because an id is unknown, the ids are looked up one by one.
    pub async fn audiences(
        &self,
        token: &SecretString,
        ids: &[AudienceId],
    ) -> Result<Vec<AudienceDetails>, GraphError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_LOOKUP) {
            let joined = chunk
                .iter()
                .map(AudienceId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let call = Call::new(
                "audiences",
                Method::GET,
                self.endpoint("")?,
                Auth::User(token),
            )
            .param("ids", joined)
            .param("fields", AUDIENCE_FIELDS);
            match self.fetch::<HashMap<String, AudienceNode>>(&call).await {
                Ok(found) => {
                    for id in chunk {
                        if let Some(node) = found.get(id.as_str()) {
                            out.extend(node.clone().into_domain());
                        }
                    }
                }
                Err(err) if is_missing_object(&err) => {
                    for id in chunk {
                        let node: Option<AudienceNode> = self
                            .node_if_exists("audience", token, id.as_str(), AUDIENCE_FIELDS)
                            .await?;
                        out.extend(node.and_then(AudienceNode::into_domain));
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// `POST /act_{id}/customaudiences`: a customer-file audience (description cut to 100
    /// characters). Not retried after errors that may mean it was created.
    pub async fn create_audience(
        &self,
        token: &SecretString,
        ad_account: &AdAccountId,
        name: &str,
        description: &str,
    ) -> Result<Audience, GraphError> {
        let description: String = description.chars().take(MAX_DESCRIPTION_CHARS).collect();
        let mut call = Call::new(
            "create_audience",
            Method::POST,
            self.endpoint(&format!("{}/customaudiences", ad_account.as_str()))?,
            Auth::User(token),
        )
        .param("name", name)
        .param("description", description)
        .param("subtype", "CUSTOM")
        .param("customer_file_source", "PARTNER_PROVIDED_ONLY");
        call.idempotent = false;
        #[derive(Deserialize)]
        struct Created {
            #[serde(deserialize_with = "lenient_string")]
            id: String,
        }
        let created: Created = self.fetch(&call).await?;
        let id = AudienceId::parse(&created.id).map_err(|_| GraphError::Decode {
            what: "create_audience",
            source: None,
        })?;
        Ok(Audience {
            id,
            name: name.to_owned(),
        })
    }

    /// `POST /{audience_id}/users` with `payload` and `session`. Safe to retry: Facebook
    /// counts a repeated `batch_seq` of a session once. An 803 (audience not propagated yet)
    /// is retried.
    ///
    /// The receipt holds **this batch's** numbers. Facebook reports `num_received` and
    /// `num_invalid_entries` for the whole session so far (the `CustomAudienceSession` node
    /// documents them as "entries received in the current session"); the client remembers
    /// each session's running totals and returns the difference (see [`per_batch_receipt`]).
    pub async fn add_members(
        &self,
        token: &SecretString,
        audience: &AudienceId,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<BatchReceipt, GraphError> {
        if session.session_id == 0 || session.session_id > i64::MAX as u64 {
            return Err(GraphError::InvalidRequest {
                reason: "session_id must be a positive 64-bit integer",
            });
        }
        if session.batch_seq == 0 {
            return Err(GraphError::InvalidRequest {
                reason: "batch_seq starts at 1",
            });
        }
        let mut call = Call::new(
            "add_members",
            Method::POST,
            self.endpoint(&format!("{}/users", audience.as_str()))?,
            Auth::User(token),
        )
        .param("payload", payload.as_json())
        .param("session", session_json(session));
        call.retry_unknown_alias = true;
        let response: UploadResponse = self.fetch(&call).await?;
        let reported = Counts {
            received: response.num_received,
            invalid: response.num_invalid_entries,
        };
        let counts = self
            .inner
            .sessions
            .record(audience, session, payload.len() as u64, reported);
        debug!(
            audience_id = %audience,
            session_id = session.session_id,
            batch_seq = session.batch_seq,
            rows = payload.len(),
            num_received = counts.received,
            num_invalid = counts.invalid,
            session_num_received = reported.received,
            "batch uploaded"
        );
        Ok(BatchReceipt {
            num_received: counts.received,
            num_invalid_entries: counts.invalid,
            session_id: response.session_id,
        })
    }

    /// `DELETE /{audience_id}/users` with `payload`.
    pub async fn remove_members(
        &self,
        token: &SecretString,
        audience: &AudienceId,
        payload: &Payload,
    ) -> Result<BatchReceipt, GraphError> {
        let call = Call::new(
            "remove_members",
            Method::DELETE,
            self.endpoint(&format!("{}/users", audience.as_str()))?,
            Auth::User(token),
        )
        .param("payload", payload.as_json());
        let receipt: UploadResponse = self.fetch(&call).await?;
        Ok(receipt.into_receipt())
    }

    /// Revokes the app's permissions for each user with batch requests of at most 50
    /// `DELETE /{user_id}/permissions` (app token). One result per user, in order. Users whose
    /// entry failed transiently are sent again in later rounds, within the retry policy.
    pub async fn revoke_permissions(
        &self,
        users: &[FacebookUserId],
    ) -> Result<Vec<(FacebookUserId, Result<(), GraphError>)>, GraphError> {
        let mut results: Vec<Option<Result<(), GraphError>>> = users.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = Vec::new();
        for (i, user) in users.iter().enumerate() {
            if user.as_str().bytes().all(|b| b.is_ascii_digit()) {
                pending.push(i);
            } else {
                results[i] = Some(Err(GraphError::InvalidRequest {
                    reason: "facebook user ids are digits",
                }));
            }
        }
        let retry = self.inner.cfg.retry.clone();
        let start = Instant::now();
        let mut round: u32 = 0;
        while !pending.is_empty() {
            round += 1;
            // rounds are bounded in number and, like one call, in total time
            let last_round = round >= retry.max_attempts.max(1)
                || start.elapsed() + retry.max_backoff > retry.max_total;
            let mut again = Vec::new();
            for chunk in pending.chunks(MAX_BATCH_REQUESTS) {
                let batch: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|&i| {
                        serde_json::json!({
                            "method": "DELETE",
                            "relative_url": format!("{}/permissions", users[i].as_str()),
                        })
                    })
                    .collect();
                let call = Call::new(
                    "revoke_permissions",
                    Method::POST,
                    self.endpoint("")?,
                    Auth::App,
                )
                .param("batch", serde_json::Value::Array(batch).to_string())
                .param("include_headers", "false");
                let answers: Vec<Option<BatchAnswer>> = self.fetch(&call).await?;
                if answers.len() != chunk.len() {
                    return Err(GraphError::BatchShape {
                        expected: chunk.len(),
                        got: answers.len(),
                    });
                }
                for (&i, answer) in chunk.iter().zip(answers) {
                    let outcome = match answer {
                        None => Err(GraphError::Timeout),
                        Some(a) => a.into_result(&[self.inner.app_token.expose_secret()]),
                    };
                    match outcome {
                        Err(err) if !last_round && err.class().is_retryable() => again.push(i),
                        other => results[i] = Some(other),
                    }
                }
            }
            if !again.is_empty() {
                tokio::time::sleep(self.backoff(round)).await;
            }
            pending = again;
        }
        Ok(users
            .iter()
            .cloned()
            .zip(results)
            .map(|(u, r)| (u, r.unwrap_or(Err(GraphError::Timeout))))
            .collect())
    }
}

/// Received and invalid rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows received.
    pub received: u64,
    /// Rows Facebook could not use.
    pub invalid: u64,
}

/// This batch's numbers from what Facebook reported for an upload of `rows` rows.
///
/// `before` is the session's running total after the previous batch, when known (`Some(0, 0)`
/// for the first batch). A report of more rows than the request carried can only be a session
/// total, so the previous total is subtracted; a report of at most `rows` is already this
/// request's (a first batch, or an API that counts per request). Without the previous total
/// the batch is assumed fully received and the invalid count is capped at `rows` (an upper
/// bound). Returns this batch's numbers and the session's running total after it.
pub fn per_batch_receipt(rows: u64, before: Option<Counts>, reported: Counts) -> (Counts, Counts) {
    if reported.received <= rows {
        // a per-request figure
        let total = before.map_or(reported, |b| Counts {
            received: b.received.saturating_add(reported.received),
            invalid: b.invalid.saturating_add(reported.invalid),
        });
        return (reported, total);
    }
    // a session total
    let batch = match before {
        Some(b) => Counts {
            received: reported.received.saturating_sub(b.received).min(rows),
            invalid: reported.invalid.saturating_sub(b.invalid).min(rows),
        },
        None => Counts {
            received: rows,
            invalid: reported.invalid.min(rows),
        },
    };
    (batch, reported)
}

/// Sessions remembered at most by [`SessionTallies`].
const MAX_TRACKED_SESSIONS: usize = 4_096;

/// Running totals per upload session: for each batch, its own numbers and the session's total
/// after it. A repeated batch gets the numbers it got the first time.
#[derive(Default)]
struct SessionTallies {
    state: std::sync::Mutex<TallyState>,
}

#[derive(Default)]
struct TallyState {
    sessions: HashMap<(String, u64), std::collections::BTreeMap<u32, (Counts, Counts)>>,
    order: std::collections::VecDeque<(String, u64)>,
}

impl SessionTallies {
    fn record(
        &self,
        audience: &AudienceId,
        session: &UploadSession,
        rows: u64,
        reported: Counts,
    ) -> Counts {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let state = &mut *guard;
        let key = (audience.as_str().to_owned(), session.session_id);
        if !state.sessions.contains_key(&key) {
            if state.order.len() >= MAX_TRACKED_SESSIONS
                && let Some(old) = state.order.pop_front()
            {
                state.sessions.remove(&old);
            }
            state.order.push_back(key.clone());
        }
        let batches = state.sessions.entry(key).or_default();
        if let Some((batch, _)) = batches.get(&session.batch_seq) {
            return *batch;
        }
        let before = if session.batch_seq <= 1 {
            Some(Counts::default())
        } else {
            batches
                .get(&(session.batch_seq - 1))
                .map(|(_, total)| *total)
        };
        if before.is_none() {
            debug!(
                audience_id = %audience,
                session_id = session.session_id,
                batch_seq = session.batch_seq,
                "previous batch of the session unknown; per-batch counts estimated"
            );
        }
        let (batch, total) = per_batch_receipt(rows, before, reported);
        batches.insert(session.batch_seq, (batch, total));
        batch
    }
}

/// 100/33 ("object does not exist or cannot be loaded") and 803 ("unknown alias").
fn is_missing_object(err: &GraphError) -> bool {
    matches!(
        (err.code(), err.subcode()),
        (Some(100), Some(33)) | (Some(803), _)
    )
}

/// The `session` parameter of an upload.
pub fn session_json(session: &UploadSession) -> String {
    let mut value = serde_json::json!({
        "session_id": session.session_id,
        "batch_seq": session.batch_seq,
        "last_batch_flag": session.last_batch,
    });
    if let (Some(total), Some(map)) = (session.estimated_num_total, value.as_object_mut()) {
        map.insert("estimated_num_total".into(), total.into());
    }
    value.to_string()
}

fn unix_time(secs: Option<i64>) -> Option<OffsetDateTime> {
    secs.filter(|s| *s > 0)
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

#[derive(Deserialize)]
struct BatchAnswer {
    code: u16,
    #[serde(default)]
    body: Option<String>,
}

impl BatchAnswer {
    fn into_result(self, secrets: &[&str]) -> Result<(), GraphError> {
        if (200..300).contains(&self.code) {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Envelope {
            error: GraphErrorBody,
        }
        match self
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Envelope>(b).ok())
        {
            Some(env) => Err(GraphError::from_body(self.code, env.error, None, secrets)),
            None => Err(GraphError::Http {
                status: self.code,
                fbtrace_id: None,
            }),
        }
    }
}

#[derive(Deserialize)]
struct UploadResponse {
    #[serde(default)]
    num_received: u64,
    #[serde(default)]
    num_invalid_entries: u64,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    session_id: Option<u64>,
}

impl UploadResponse {
    fn into_receipt(self) -> BatchReceipt {
        BatchReceipt {
            num_received: self.num_received,
            num_invalid_entries: self.num_invalid_entries,
            session_id: self.session_id,
        }
    }
}

#[derive(Deserialize)]
struct AdAccountNode {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    business: Option<BusinessNode>,
    #[serde(default)]
    user_tos_accepted: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct BusinessNode {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: String,
}

impl AdAccountNode {
    fn into_domain(self) -> Option<AdAccount> {
        let id = match AdAccountId::parse(&self.id) {
            Ok(id) => id,
            Err(_) => {
                warn!("skipping an ad account with an unexpected id");
                return None;
            }
        };
        let business = self.business.and_then(|b| {
            BusinessId::new(b.id)
                .ok()
                .map(|id| Business { id, name: b.name })
        });
        let tos = self
            .user_tos_accepted
            .as_ref()
            .and_then(|m| m.get("custom_audience_tos"))
            .is_some_and(|v| v.as_i64() == Some(1) || v.as_str() == Some("1"));
        Some(AdAccount {
            id,
            name: self.name,
            business,
            user_accepted_custom_audience_tos: tos,
        })
    }
}

#[derive(Clone, Deserialize)]
struct AudienceNode {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    account_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    time_created: Option<serde_json::Value>,
}

impl AudienceNode {
    fn into_domain(self) -> Option<AudienceDetails> {
        let id = AudienceId::parse(&self.id).ok()?;
        let time_created = match self.time_created {
            Some(serde_json::Value::Number(n)) => unix_time(n.as_i64()),
            Some(serde_json::Value::String(s)) => s
                .parse::<i64>()
                .ok()
                .and_then(|n| unix_time(Some(n)))
                .or_else(|| {
                    OffsetDateTime::parse(
                        &s,
                        &time::format_description::well_known::Iso8601::DEFAULT,
                    )
                    .ok()
                }),
            _ => None,
        };
        Some(AudienceDetails {
            id,
            account_id: self.account_id,
            name: self.name,
            description: self.description,
            time_created,
        })
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(lenient_opt_string(d)?.and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let proof = appsecret_proof(
            &SecretString::from("Jefe".to_owned()),
            &SecretString::from("what do ya want for nothing?".to_owned()),
        );
        assert_eq!(
            proof,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let cfg = GraphConfig::new("1", SecretString::from("s".to_owned())).with_retry(
            crate::config::RetryPolicy {
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(1_000),
                ..crate::config::RetryPolicy::default()
            },
        );
        let client = GraphClient::new(cfg).unwrap();
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let first = client.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            firsts.insert(first);
            let third = client.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let capped = client.backoff(30);
            assert!(capped >= Duration::from_millis(500) && capped <= Duration::from_millis(1_000));
        }
        assert!(firsts.len() > 1, "jitter spreads the waits");
    }

    #[test]
    fn per_batch_numbers_from_session_totals_or_per_request_numbers() {
        let c = |received, invalid| Counts { received, invalid };
        // first batch: the total is the batch
        assert_eq!(
            per_batch_receipt(10, Some(c(0, 0)), c(10, 1)),
            (c(10, 1), c(10, 1))
        );
        // session totals: the difference
        assert_eq!(
            per_batch_receipt(10, Some(c(10, 1)), c(20, 3)),
            (c(10, 2), c(20, 3))
        );
        // per-request numbers: taken as they are, the running total is kept
        assert_eq!(
            per_batch_receipt(10, Some(c(10, 1)), c(10, 2)),
            (c(10, 2), c(20, 3))
        );
        // previous total unknown: the batch fully received, invalid bounded by the batch
        assert_eq!(per_batch_receipt(5, None, c(25, 9)), (c(5, 5), c(25, 9)));
        // nonsense never underflows
        assert_eq!(
            per_batch_receipt(5, Some(c(40, 9)), c(25, 1)),
            (c(0, 0), c(25, 1))
        );
    }

    #[test]
    fn session_json_has_the_graph_field_names() {
        let s = UploadSession {
            session_id: 7,
            batch_seq: 2,
            last_batch: true,
            estimated_num_total: Some(15_000),
        };
        let v: serde_json::Value = serde_json::from_str(&session_json(&s)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"session_id": 7, "batch_seq": 2, "last_batch_flag": true, "estimated_num_total": 15000})
        );
        let s = UploadSession {
            estimated_num_total: None,
            ..s
        };
        assert!(!session_json(&s).contains("estimated_num_total"));
    }

    #[test]
    fn root_url_carries_the_version() {
        let cfg = GraphConfig::new("1", SecretString::from("s".to_owned()))
            .with_base_url(Url::parse("http://127.0.0.1:9/prefix/").unwrap());
        let client = GraphClient::new(cfg).unwrap();
        assert_eq!(
            client.root_url().as_str(),
            "http://127.0.0.1:9/prefix/v25.0/"
        );
        assert_eq!(
            client.endpoint("act_1/customaudiences").unwrap().as_str(),
            "http://127.0.0.1:9/prefix/v25.0/act_1/customaudiences"
        );
        let bad =
            GraphConfig::new("1", SecretString::from("s".to_owned())).with_api_version("../x");
        assert!(GraphClient::new(bad).is_err());
        assert_eq!(
            GraphConfig::new("1", SecretString::from("s".to_owned()))
                .base_url
                .as_str(),
            "https://graph.facebook.com/"
        );
    }
}
