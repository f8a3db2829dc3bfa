//! Client configuration. Every value the public spec marks as an assumption (feed paths,
//! payload-type strings) lives here, with the spec's defaults.

use std::time::Duration;

use connector_resilience::RetryPolicy;
use secrecy::SecretString;
use url::Url;

/// Which delivery feed [`NarrativeClient`](crate::NarrativeClient) polls as its
/// [`EventSource`](facebook_connector_core::ports::EventSource).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedKind {
    /// `GET /v1/app/commands/delivery`: legacy subscription deliveries only (camelCase
    /// `PerformDelivery` payloads).
    LegacyCommands,
    /// `GET /v2/app/events` (\[ASSUMED\] shape): subscription deliveries, appended snapshots and
    /// created connections.
    #[default]
    Events,
}

/// The `payload_type` strings of the known event kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadTypes {
    /// Legacy subscription delivery. Default `PerformDelivery`.
    pub perform_delivery: String,
    /// New files in a connected dataset. Default `snapshot-appended` (\[ASSUMED\]).
    pub snapshot_appended: String,
    /// A dataset was connected to a profile. Default `connection-created` (\[ASSUMED\]).
    pub connection_created: String,
}

impl Default for PayloadTypes {
    fn default() -> Self {
        PayloadTypes {
            perform_delivery: "PerformDelivery".to_owned(),
            snapshot_appended: "snapshot-appended".to_owned(),
            connection_created: "connection-created".to_owned(),
        }
    }
}

/// Where the feeds are and how their events are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedConfig {
    /// Which feed is polled.
    pub kind: FeedKind,
    /// Path of the legacy commands feed; also the prefix of the legacy `files` and `download`
    /// calls. Default `/v1/app/commands/delivery`.
    pub legacy_commands_path: String,
    /// Path of the event feed. Default `/v2/app/events` (\[ASSUMED\]).
    pub events_path: String,
    /// Payload-type strings.
    pub payload_types: PayloadTypes,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            kind: FeedKind::default(),
            legacy_commands_path: "/v1/app/commands/delivery".to_owned(),
            events_path: "/v2/app/events".to_owned(),
            payload_types: PayloadTypes::default(),
        }
    }
}

/// Timeouts and retries of every HTTP call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Whole-request timeout of API calls (not of file downloads).
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// For downloads: the longest pause between two reads of the body.
    pub read_timeout: Duration,
    /// Retries of idempotent calls (attempts count the first one; the budget bounds one call,
    /// attempts and waits together: see `connector_resilience`).
    pub retry: RetryPolicy,
    /// How long before its expiry the app token is refreshed (at most half its lifetime).
    pub token_refresh_margin: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(60),
            user_agent: concat!("facebook-connector/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Short timeouts and tiny retry delays, for tests against a local fake.
    pub fn fast() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            retry: RetryPolicy::fast(),
            ..HttpConfig::default()
        }
    }
}

/// Configuration of the app-token client ([`NarrativeClient`](crate::NarrativeClient)).
/// `Debug` shows neither the secret nor credentials or a query in the base URL.
#[derive(Clone)]
pub struct NarrativeConfig {
    /// `https://api.narrative.io` (prod), `https://api-dev.narrative.io` (dev), or a fake.
    pub base_url: Url,
    /// OAuth client id of the app.
    pub client_id: String,
    /// OAuth client secret of the app (redacted in `Debug`).
    pub client_secret: SecretString,
    /// Feeds and payload types.
    pub feed: FeedConfig,
    /// Timeouts and retries.
    pub http: HttpConfig,
}

impl std::fmt::Debug for NarrativeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NarrativeConfig")
            .field(
                "base_url",
                &connector_resilience::redacted_url(&self.base_url),
            )
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("feed", &self.feed)
            .field("http", &self.http)
            .finish()
    }
}

impl NarrativeConfig {
    /// A configuration with the spec's defaults.
    pub fn new(base_url: Url, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        NarrativeConfig {
            base_url,
            client_id: client_id.into(),
            client_secret,
            feed: FeedConfig::default(),
            http: HttpConfig::default(),
        }
    }

    /// Polls this feed.
    pub fn with_feed_kind(mut self, kind: FeedKind) -> Self {
        self.feed.kind = kind;
        self
    }

    /// Uses these timings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_client_secret() {
        let config = NarrativeConfig::new(
            Url::parse("http://user:url-password@127.0.0.1:1/base?key=url-query-key").unwrap(),
            "id",
            SecretString::from("very-secret-value"),
        );
        let debug = format!("{config:?}");
        for secret in ["very-secret-value", "url-password", "url-query-key"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("http://127.0.0.1:1/base"), "{debug}");
        assert_eq!(config.feed.events_path, "/v2/app/events");
        assert_eq!(config.feed.kind, FeedKind::Events);
    }
}
