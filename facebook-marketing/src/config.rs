//! Client configuration: where the Graph API is, the app credentials, timeouts, retries and
//! the client-side limiter.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// The Graph API version used unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "v25.0";

/// Facebook's public Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// How failed calls are retried inside the client. Transient errors back off exponentially
/// with jitter; throttled calls wait for Facebook's `estimated_time_to_regain_access` when it
/// is given. A wait that would go past `max_total` is not taken: the call gives up and the
/// error carries the wait as `retry_after` so the caller can schedule a later attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff after a transient failure.
    pub initial_backoff: Duration,
    /// Cap of one exponential backoff step.
    pub max_backoff: Duration,
    /// Wait after a throttling error without a usable hint.
    pub throttle_backoff: Duration,
    /// Wait after a temporary policy block (code 368).
    pub policy_backoff: Duration,
    /// Total time one call may spend, waits included.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            throttle_backoff: Duration::from_secs(60),
            policy_backoff: Duration::from_secs(15 * 60),
            max_total: Duration::from_secs(3 * 60),
        }
    }
}

impl RetryPolicy {
    /// Millisecond waits, for tests: retries happen but take almost no time.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            throttle_backoff: Duration::from_millis(5),
            policy_backoff: Duration::from_millis(10),
            max_total: Duration::from_secs(10),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::fast()
        }
    }
}

/// The client-side limiter: before each call the client waits longer the closer the last
/// reported `X-App-Usage` (app-wide) / `X-Business-Use-Case-Usage` (per user token)
/// percentages are to 100.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Usage percentage from which calls are slowed down.
    pub slow_down_from: u8,
    /// Wait before a call when usage is at (or above) 100%.
    pub max_delay: Duration,
    /// Usage reports older than this are ignored.
    pub usage_ttl: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            slow_down_from: 75,
            max_delay: Duration::from_secs(20),
            usage_ttl: Duration::from_secs(5 * 60),
        }
    }
}

impl LimiterConfig {
    /// Millisecond waits, for tests.
    pub fn fast() -> Self {
        LimiterConfig {
            slow_down_from: 75,
            max_delay: Duration::from_millis(20),
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
    /// Retries inside the client.
    pub retry: RetryPolicy,
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
            .field("limiter", &self.limiter)
            .finish()
    }
}
