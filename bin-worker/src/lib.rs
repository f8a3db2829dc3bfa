//! `facebook-connector-worker`: the delivery daemon's host and its operator commands. The
//! binary's `main` calls [`cli::main`]; everything else is library code so that tests, the
//! benchmarks and the `demo` wire the engine exactly as `run` does ([`wiring`]).

pub mod cli;
pub mod deliveries;
pub mod demo;
pub mod records;
pub mod retry;
pub mod run;
pub mod upload;
pub mod wiring;
