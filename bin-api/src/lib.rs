//! `facebook-connector-api`: the HTTP API the marketplace UI calls to manage profiles
//! (behaviour.md, "HTTP API"; shapes and codes in operations.md).
//!
//! The profile logic is [`facebook_connector_core::profiles::ProfileService`]; this crate maps
//! requests and errors onto it:
//! - [`app`]: the router, `/openapi.json`, and the middleware (request id, 64 KiB body
//!   limit, timeout, panics, CORS, access log, metrics);
//! - [`routes`]: one handler per route, each with its OpenAPI entry;
//! - [`auth`]: the bearer token, forwarded to the marketplace, with a short cache;
//! - [`body`]: JSON bodies with a 400 that names the field;
//! - [`dto`]: the JSON shapes; [`error`]: the one error shape;
//! - [`serve`]: `serve`'s configuration and wiring (`main` only parses the command line).

pub mod app;
pub mod auth;
pub mod body;
pub mod dto;
pub mod error;
pub mod openapi;
pub mod routes;
pub mod serve;

pub use app::{AppOptions, AppState, CorsOrigins, router};
