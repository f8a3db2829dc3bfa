//! The two backends. Both include the same implementation (`shared.rs`) and differ only in the
//! few items each module defines before including it: column types of times, how a write
//! transaction starts, and the row-locking clauses.

pub mod postgres;
pub mod sqlite;
