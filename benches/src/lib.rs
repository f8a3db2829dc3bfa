//! The benchmarks' record generator lives in `facebook-connector-testdata` (the worker's
//! `demo` and the end-to-end tests use it too); re-exported here so the benchmarks name it
//! as before.

pub use facebook_connector_testdata::*;
