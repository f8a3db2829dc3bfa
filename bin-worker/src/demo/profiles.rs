//! The demo's only contact with the profile logic: the API's own
//! [`ProfileService`](facebook_connector_core::profiles::ProfileService). `create` is exactly
//! what `POST /profiles` (then `POST /profiles/{id}/enable`) calls (token check, long-lived exchange, ad account check, the
//! marketplace profile, the encrypted row) and `reauthorize` what
//! `POST /profiles/{id}/reauthorize` calls (which resumes the profile's paused jobs).

use facebook_connector_core::profiles::{
    NewProfile, ProfileError, ProfileService, ProfileView, Reauthorized,
};
use secrecy::SecretString;

/// Creates a profile as `POST /profiles` does, for the customer behind `customer` (their
/// marketplace bearer token), then enables it as `POST /profiles/{id}/enable` does (a profile
/// starts disabled; the customer enables it before choosing it at checkout).
pub async fn create(
    service: &ProfileService,
    customer: &SecretString,
    new: NewProfile,
) -> Result<ProfileView, ProfileError> {
    let caller = service.caller(customer.clone()).await?;
    let created = service.create(&caller, new).await?;
    service.enable(&caller, created.id).await
}

/// Replaces the token of a `needs_reauth` profile as `POST /profiles/{id}/reauthorize` does.
pub async fn reauthorize(
    service: &ProfileService,
    customer: &SecretString,
    id: facebook_connector_core::domain::ProfileId,
    token: SecretString,
) -> Result<Reauthorized, ProfileError> {
    let caller = service.caller(customer.clone()).await?;
    service.reauthorize(&caller, id, token).await
}
