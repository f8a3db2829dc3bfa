//! Facebook Graph / Marketing API client for customer-file Custom Audiences.
//!
//! [`GraphClient`] covers every call of `facebook-api.md` (token inspection and exchange, ad
//! accounts, audiences, member uploads with sessions, batched permission revocation) and
//! implements the core's [`AudienceSink`](facebook_connector_core::ports::AudienceSink) and
//! [`FacebookAccounts`](facebook_connector_core::ports::FacebookAccounts) ports.
//!
//! * TLS: rustls with the ring provider; one shared connection pool per client.
//! * Every user-token call carries `appsecret_proof`.
//! * Errors: [`GraphError`] keeps code, subcode, fbtrace_id, the user-facing texts and the
//!   HTTP status; [`ErrorClass`] follows the error table; [`GraphError::into_core`] maps into
//!   the core's error (invalid token → `InvalidToken`, never retried).
//! * Transient and throttled calls are retried within [`RetryPolicy`] (backoff with jitter,
//!   `estimated_time_to_regain_access` honoured, bounded in attempts and total time, each
//!   attempt's timeout capped by what is left of the budget); a limiter slows calls as
//!   `X-App-Usage` (every call) / `X-Business-Use-Case-Usage` (calls with the same user token)
//!   approach 100%, and holds calls back after a throttle with a wait estimate.
//! * Upload receipts are per batch: Facebook reports a session's running totals, the client
//!   returns each batch's share ([`per_batch_receipt`]).
//! * Tokens are [`secrecy::SecretString`]; they never appear in logs, errors or `Debug`.
//!   Redirects are never followed (they could carry a token to another host).
//!
//! With the `testkit` feature, `testkit::FakeGraph` is an in-process fake Graph API on a
//! real socket for tests and demos.

pub mod client;
pub mod config;
pub mod error;
mod ports;
pub mod usage;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use client::{AudienceDetails, GraphClient, appsecret_proof, session_json};
pub use config::{DEFAULT_API_VERSION, DEFAULT_BASE_URL, GraphConfig, LimiterConfig, RetryPolicy};
pub use error::{ApiError, ErrorClass, GraphError, GraphErrorBody};
