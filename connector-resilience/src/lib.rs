//! What the connector's HTTP clients (`narrative-client`, `facebook-marketing`) share, so that
//! each concern has one implementation:
//!
//! * [`RetryPolicy`]: the one retry loop, built on [`backon`] — `when` decides what is
//!   retried (the client's classification, [`Retry`]), `adjust` honours the upstream's own wait
//!   (`Retry-After`, Facebook's `estimated_time_to_regain_access`) and enforces the total
//!   budget, `notify` logs each retry;
//! * [`parse_retry_after`] / [`retry_after`]: `Retry-After` in seconds or as an HTTP date;
//! * [`client_builder`]: a `reqwest` client builder with rustls, the *ring* provider and the
//!   platform's certificate verifier (no aws-lc, no process-wide provider);
//! * [`scrub`] / [`redacted_url`]: secrets out of texts that reach errors and logs;
//! * [`lenient`]: one serde mechanism for fields that arrive as a string or as a number.
//!
//! The crate knows nothing of the connector's domain or of its core's error type: each client
//! classifies its own errors and maps them into the core's.
//!
//! # Retry layering
//!
//! Two layers retry, with different horizons:
//!
//! 1. **The client** ([`RetryPolicy`]) retries *short*: a 5xx, a reset connection, a throttle
//!    whose wait estimate is a few seconds. Its whole budget ([`RetryPolicy::budget`], 30 s by
//!    default: attempts and waits together) stays well under the delivery job's lease (60 s),
//!    so a job never loses its lease while its client is sleeping.
//! 2. **The job queue** handles *long* waits: when the next wait does not fit in what is left of
//!    the budget (a throttle for minutes, a policy block, a `Retry-After: 600`), the policy stops
//!    at once without sleeping and reports the wait it would have needed
//!    ([`GaveUp::wait`]). The client returns it as the core's `Throttled { retry_after }` /
//!    `Transient { retry_after }`, and the engine hands the job back to the queue with that
//!    `retry_at`, freeing the worker slot for other customers' jobs.
//!
//! # What "attempts" means
//!
//! [`RetryPolicy::max_attempts`] counts every attempt, the first included: `1` never retries,
//! `4` sends at most four times (three retries). There is no other count.

mod retry;
mod retry_after;
mod scrub;
mod tls;

pub mod lenient;

pub use retry::{Attempt, GaveUp, Retry, RetryPolicy};
pub use retry_after::{parse_retry_after, retry_after};
pub use scrub::{MIN_SECRET_LEN, REDACTED, contains_secret, redacted_url, scrub};
pub use tls::{client_builder, tls_config};
