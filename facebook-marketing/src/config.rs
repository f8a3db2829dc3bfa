//! Client configuration: where the Graph API is, the app credentials, timeouts, retries and
//! the client-side limiter.

use std::fmt;
use std::time::Duration;

pub use connector_resilience::RetryPolicy;
use secrecy::SecretString;
use url::Url;

/// The Graph API version used unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "v25.0";

/// Facebook's public Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The client-side limiter (see [`crate::usage`]). Calls are spaced out per scope (the app for
/// `X-App-Usage`; each ad account for `X-Business-Use-Case-Usage` of audience and upload
/// calls) once the last reported usage reaches `slow_down_from`, more the closer it is to
/// 100%; at 100% Facebook throttles and its wait estimate governs instead. Every caller
/// reserves its own slot, so callers queued behind a throttle or behind each other are spread
/// at least `queue_spacing` apart rather than all firing when the wait ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Usage percentage from which calls are spaced out.
    pub slow_down_from: u8,
    /// Spacing between two calls of one scope just below 100% usage; it grows linearly from
    /// zero at `slow_down_from`.
    pub max_spacing: Duration,
    /// The least spacing between callers that queue for a scope (behind a throttle's end or
    /// another caller's slot); each slot gets up to 25% jitter on top.
    pub queue_spacing: Duration,
    /// Usage reports older than this are ignored.
    pub usage_ttl: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            slow_down_from: 75,
            max_spacing: Duration::from_secs(10),
            queue_spacing: Duration::from_millis(250),
            usage_ttl: Duration::from_secs(5 * 60),
        }
    }
}

impl LimiterConfig {
    /// Millisecond waits, for tests.
    pub fn fast() -> Self {
        LimiterConfig {
            slow_down_from: 75,
            max_spacing: Duration::from_millis(20),
            queue_spacing: Duration::from_millis(2),
            usage_ttl: Duration::from_secs(60),
        }
    }
}

/// Everything the client needs. `Debug` never shows the app secret.
#[derive(Clone)]
pub struct GraphConfig {
    /// Scheme, host and port (and optional path prefix) of the Graph API, without the version.
    pub base_url: Url,
    /// Version path segment, e.g. `v25.0`.
    pub api_version: String,
    /// The Facebook app id.
    pub app_id: String,
    /// The Facebook app secret (signs `appsecret_proof`, forms the app token).
    pub app_secret: SecretString,
    /// Timeout of one HTTP call.
    pub timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Retries inside the client: short, within a budget well under a job's lease (see
    /// `connector_resilience`); longer waits are handed back as `retry_after`.
    pub retry: RetryPolicy,
    /// The wait after a temporary policy block (code 368) — Facebook gives no estimate; far
    /// longer than the retry budget, so such a call is handed back at once with this wait.
    pub policy_block_wait: Duration,
    /// Client-side slow-down.
    pub limiter: LimiterConfig,
}

impl GraphConfig {
    /// Production defaults for the given app.
    pub fn new(app_id: impl Into<String>, app_secret: SecretString) -> Self {
        GraphConfig {
            base_url: default_base_url(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            app_id: app_id.into(),
            app_secret,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            policy_block_wait: Duration::from_secs(15 * 60),
            limiter: LimiterConfig::default(),
        }
    }

    /// Points the client at another base URL (e.g. the fake Graph API).
    pub fn with_base_url(mut self, base_url: Url) -> Self {
        self.base_url = base_url;
        self
    }

    /// Uses another API version.
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the limiter.
    pub fn with_limiter(mut self, limiter: LimiterConfig) -> Self {
        self.limiter = limiter;
        self
    }
}

#[allow(clippy::expect_used)] // a constant, checked by a unit test; no input involved
fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base url is valid")
}

impl fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_version", &self.api_version)
            .field("app_id", &self.app_id)
            .field("app_secret", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("policy_block_wait", &self.policy_block_wait)
            .field("limiter", &self.limiter)
            .finish()
    }
}
