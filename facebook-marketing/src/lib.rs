//! Facebook Graph / Marketing API client for customer-file Custom Audiences.
//!
//! [`GraphClient`] covers every call of `facebook-api.md` (token inspection and exchange, ad
//! accounts, audiences, member uploads with sessions, batched permission revocation) and
//! implements the core's [`AudienceSink`](facebook_connector_core::ports::AudienceSink) and
//! [`FacebookAccounts`](facebook_connector_core::ports::FacebookAccounts) ports.
//!
//! * TLS: rustls with the ring provider (`connector_resilience::client_builder`); one shared
//!   connection pool and one limiter per client (clone it, do not build one per call).
//! * Every user-token call carries `appsecret_proof`.
//! * Errors: [`GraphError`] keeps code, subcode, fbtrace_id, the user-facing texts and the
//!   HTTP status; [`ErrorClass`] follows the error table; [`GraphError::into_core`] maps into
//!   the core's error: invalid token → `InvalidToken`; throttled, policy block (368) and audience
//!   update in progress (2650/1870145) → `Throttled { retry_after }`; transient → `Transient`;
//!   permission / flagged / bad request → `PermissionDenied` / `Rejected` with Facebook's
//!   user-facing message where it gave one (never a token).
//! * Retries: the shared [`RetryPolicy`] (`connector_resilience`): backoff with jitter, a
//!   throttle's `estimated_time_to_regain_access` honoured (an estimate of 0 = retry soon),
//!   every attempt's timeout capped by what is left of a short budget (30 s by default). A
//!   wait that does not fit is not taken: the error carries it as `retry_after` for the job
//!   queue. Attempts count the first one.
//! * The limiter ([`usage`]): per ad account for audience creation and uploads (its
//!   `X-Business-Use-Case-Usage` and throttles), app-wide for `X-App-Usage` and app-level
//!   throttles; calls are paced only below 100% usage; each caller reserves its own slot, so
//!   concurrent uploads waiting for one throttle's end come back spread out.
//! * Uploads return Facebook's answer as reported: the session's running totals
//!   (`UploadOutcome::Accepted`), or `SessionFinished` (2650/1870159, e.g. a re-sent last
//!   batch that was processed) / `SessionExpired` (2650/1870158).
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
