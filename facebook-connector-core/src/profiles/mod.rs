//! The profile logic of the customer flow, over the ports: creating a profile (token checks,
//! long-lived exchange, ad account checks, marketplace profile, encrypted token row), showing
//! profiles with their token expiry and delivery state, enabling, archiving, re-authorising
//! (same Facebook user, resumes paused jobs) and disconnecting a company, and describing a
//! Facebook token. The HTTP API maps requests and errors onto [`ProfileService`]; the worker's
//! `demo` and other hosts call the same functions.
//!
//! ```no_run
//! # async fn demo(ports: facebook_connector_core::profiles::ProfilePorts) -> Result<(), facebook_connector_core::profiles::ProfileError> {
//! use facebook_connector_core::profiles::{NewProfile, ProfileService};
//! use secrecy::SecretString;
//! let service = ProfileService::new(ports);
//! let caller = service.caller(SecretString::from("marketplace bearer token")).await?;
//! let profile = service
//!     .create(&caller, NewProfile {
//!         name: "Main ad account".into(),
//!         description: None,
//!         ad_account_id: "act_1234".into(),
//!         token: SecretString::from("short-lived facebook user token"),
//!     })
//!     .await?;
//! let renewed = service
//!     .reauthorize(&caller, profile.id, SecretString::from("fresh facebook token"))
//!     .await?;
//! println!("{} jobs resumed", renewed.resumed_jobs);
//! # Ok(()) }
//! ```

mod error;
mod model;
mod service;
#[cfg(test)]
mod tests;

pub use error::{ProfileError, Upstream};
pub use model::{
    Caller, Disconnected, NewProfile, ProfileView, Reauthorized, TokenMetadata, TokenView,
};
pub use service::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, ProfilePorts, ProfileService};
