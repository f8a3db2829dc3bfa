//! The core of the Facebook connector: domain types, the record parser and payload builder,
//! the ports (traits) the adapters implement, and the generic delivery engine.
//!
//! This crate does no HTTP and no SQL. See `ARCHITECTURE.md` at the repository root.

pub mod domain;
pub mod engine;
pub mod error;
pub mod form;
pub mod member;
pub mod normalize;
pub mod payload;
pub mod ports;
pub mod profiles;
pub mod source;

pub use error::{BoxError, Disposition, Error, InvalidValue, Result};
