//! What `facebook-connector-api` and `facebook-connector-worker` share, so that each binary's
//! `main` only wires configuration to library code:
//!
//! - [`config`]: the flags of operations.md that both binaries take (with their environment
//!   fallbacks and defaults), defined once; required values checked with a one-line error
//!   before anything connects ([`config::MissingValue`], exit status 2); durations in
//!   humantime form (`200ms`, `5s`, `2m`).
//! - [`logging`]: `tracing` to stderr, text on a terminal and JSON (one object per line with
//!   `timestamp`, `level`, `message`, `target` and the event's fields) otherwise; `RUST_LOG`
//!   filters, `info` by default.
//! - [`ops`]: the Prometheus recorder and the `/metrics`, `/healthz`, `/readyz` routes.
//! - [`shutdown`]: SIGTERM / SIGINT.
//! - [`migrate`]: the `migrate` command of both binaries.
//! - [`exit`]: how an error becomes a message and an exit status.

pub mod config;
pub mod exit;
pub mod logging;
pub mod migrate;
pub mod ops;
pub mod shutdown;

pub use config::{DatabaseArgs, LogArgs, MissingValue, ServiceArgs, require};
pub use logging::LogFormat;
