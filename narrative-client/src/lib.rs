//! Client of the Narrative data marketplace API, behind the connector core's ports.
//!
//! - [`NarrativeClient`] (app token): [`EventSource`](facebook_connector_core::ports::EventSource),
//!   [`ConnectionDirectory`](facebook_connector_core::ports::ConnectionDirectory),
//!   [`DeliveryFiles`](facebook_connector_core::ports::DeliveryFiles) and
//!   [`StatusReporter`](facebook_connector_core::ports::StatusReporter). Status reporting is
//!   off unless the binary wires the client in as a `StatusReporter`.
//! - [`ProfileClient`] (customer bearer token):
//!   [`ProfileDirectory`](facebook_connector_core::ports::ProfileDirectory).
//! - `testkit` feature: `testkit::FakeMarketplace`, an in-process fake of these endpoints on a
//!   real socket.
//!
//! # Authentication
//! `POST /oauth/token` with HTTP Basic `client_id:client_secret`: a `client_credentials` grant,
//! refreshed (`refresh_token` grant) before it expires; a 401 renews the token once and retries
//! the call; a failed refresh falls back to a new `client_credentials` grant. Concurrent callers
//! share one renewal. Tokens and the client secret are [`secrecy::SecretString`]s: they are never
//! logged, never in an error message, and redacted in `Debug`.
//!
//! # Errors and retries
//! Calls return [`NarrativeError`]; the port implementations map it into
//! [`facebook_connector_core::Error`] (the detailed error stays as the `source`):
//! 5xx/408/429/timeouts/resets → `Transient` (after retries), 401 with the customer's token →
//! `InvalidToken`, 401 with the app token after a renewal → `PermissionDenied`, 403 →
//! `PermissionDenied` (a snapshot older than 30 days → `Rejected`), 404 → `NotFound` (or `None`
//! where the port returns an `Option`), 451 `expired` download → `Rejected`, a truncated
//! download → `Transient`, other 4xx and undecodable bodies → `Rejected`, local file I/O
//! while downloading (disk full, temporary directory gone) → `Transient` (not the file's fault,
//! not a bug). Idempotent calls (GET, PUT, download-link requests, status events with their
//! idempotency key, token grants) are retried under [`RetryPolicy`] (the shared
//! `connector_resilience` policy: exponential backoff with jitter, the server's `Retry-After`
//! in seconds or as an HTTP date honoured, at most `max_attempts` attempts *including the
//! first*, all within a short `budget`); a `Retry-After` that does not fit in the budget is
//! not slept on: the call fails at once with `Transient { retry_after }` so the engine can
//! schedule the job through its queue. Profile creation and lifecycle transitions are not
//! retried.
//!
//! # Assumptions (\[ASSUMED\] in the spec: not in Narrative's public API document)
//! All of them are configuration ([`FeedConfig`], [`PayloadTypes`]) with these defaults:
//! - the event feed is `GET /v2/app/events?from_revision=N&max_results=M` →
//!   `{records: [event], next_revision}`, event = `{metadata: {revision, timestamp}, payload_type,
//!   payload}`; payload types `PerformDelivery` (camelCase legacy payload), `snapshot-appended`
//!   `{connection_id, snapshot_id}`, `connection-created` `{connection_id}`;
//! - the legacy feed `GET /v1/app/commands/delivery` takes the same `from_revision` and
//!   `max_results` query and answers a top-level `next_revision`;
//! - whether `from_revision` is inclusive is not documented, so [`NarrativeClient::fetch_events`]
//!   sends the cursor itself (`from_revision = after`, 0 at the start; `max_results` at least 2)
//!   and drops anything at or before `after`: no event is skipped under either reading, and an
//!   inclusive feed repeats one event per page. `EventPage::next_revision` is the feed's
//!   `next_revision` as sent (the engine's cursor must be the last *recorded* revision, not
//!   this value, whose meaning depends on the same unknown);
//! - the legacy download call answers the URL as a JSON string (an object with `download_url`
//!   and plain text are accepted too);
//! - `GET /installations/whoami` → `{id}` with an integer or uuid id;
//! - `find-files` pages continue from `next_snapshot` (as `from_snapshot_id`, offset reset to 0)
//!   when a page names one, otherwise by `offset += per_page`; the time bound (snapshots taken
//!   strictly before the event) is applied to each snapshot's `timestamp` on our side;
//! - a presigned link refused with 403/410 is requested once more, then the file is reported as
//!   expired; a download whose body breaks off (reset, truncation, stall) is downloaded again
//!   with a fresh link, within the policy's
//!   `max_attempts` (its budget does not apply: a large file's download time is not a wait);
//! - `find-files` stops at a page without snapshots even when it claims `has_next`;
//! - tolerated variations: listings wrapped in `{records: [...]}` as well as bare arrays,
//!   `files-added` entries as `{name}`, `{path}` or strings, snapshot ids as numbers or strings,
//!   token lifetimes as numbers or numeric strings, profile statuses in any case; unknown fields
//!   are ignored everywhere.
//!
//! TLS is rustls with the *ring* provider and the platform's verifier (`connector_resilience::client_builder`), configured per client
//! (no process-wide provider is installed).
//!
//! # Feed decoding
//! Unknown payload types become `DeliveryEvent::Unknown { payload_type }`. A *known* type with a
//! payload that does not decode also becomes `Unknown`, with `payload_type` `"<type>
//! (malformed)"` and a warning, so a bad event never stops the feed. A record without a readable
//! revision cannot be placed in the feed and is dropped with an error log.

mod auth;
mod client;
mod config;
mod error;
mod events;
mod http;
mod profiles;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use client::{DELIVERY_COMPLETED, DELIVERY_FAILED, LegacyDeliveryFile, NarrativeClient};
pub use config::{FeedConfig, FeedKind, HttpConfig, NarrativeConfig, PayloadTypes};
pub use connector_resilience::RetryPolicy;
pub use error::NarrativeError;
pub use profiles::ProfileClient;
