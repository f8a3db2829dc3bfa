//! The two backends, with one implementation of the ports: the files in `shared/` (one per
//! port, plus the store type and row decoding) are declared as modules of both `postgres` and
//! `sqlite` with `#[path]`, so each backend compiles the same code against its own few items
//! (`Db`, `DbPool`, `DbRow`, `Ts`, `ts`, `from_ts`, `begin_write`, `MIGRATOR` and the SQL
//! constants whose text differs: row locks and the migrations table check). The shared files
//! reach those items as `super::…`; rustfmt and clippy see every file.

#[expect(
    clippy::duplicate_mod,
    reason = "both backends compile the shared files, each against its own items"
)]
pub mod postgres;
pub mod sqlite;
