//! SEAM: the demo's only contact with the profile logic of the API. `create` is what
//! `POST /profiles` does and `reauthorize` what `POST /profiles/{id}/reauthorize` does; both
//! must call the API's own library code (`facebook_connector_core::profiles`), never a copy of
//! it.
//!
//! TEMPORARY (until the API's profile code is merged): the two functions store the profile
//! with the store's own port calls (`ProfileStore::insert_profile` / `reauthorize`) — no token
//! check, no exchange for a long-lived token, no marketplace profile.

use std::sync::Arc;

use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Business, BusinessId, CompanyId, DeliveryState, FacebookUser,
    ProfileId, StoredProfile, TokenMeta,
};
use facebook_connector_core::ports::{
    Clock, FacebookAccounts, ProfileDirectory, ProfileStore, TokenCipher,
};
use secrecy::SecretString;

use super::DemoError;

/// What the API's profile code works with (as bin-api wires it for its routes).
#[derive(Clone)]
pub struct ProfileContext {
    /// Facebook (token checks, exchange, ad accounts).
    pub facebook: Arc<dyn FacebookAccounts>,
    /// The marketplace (the customer's company and installation, its profiles).
    pub marketplace: Arc<dyn ProfileDirectory>,
    /// Where profiles are kept.
    pub store: Arc<dyn ProfileStore>,
    /// Encrypts their tokens.
    pub cipher: Arc<dyn TokenCipher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// `POST /profiles`' body, with the caller's marketplace bearer token.
#[derive(Clone, Debug)]
pub struct NewProfile {
    /// The customer's marketplace token (`Authorization: Bearer`).
    pub customer: SecretString,
    /// Profile name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The chosen ad account.
    pub ad_account_id: AdAccountId,
    /// The Facebook user token the UI got from Facebook login.
    pub token: SecretString,
    /// TEMPORARY: what the API's code would learn from the marketplace and Facebook.
    pub known: Known,
}

/// TEMPORARY: facts the API's profile code looks up itself (company, user, ad account).
#[derive(Clone, Debug)]
pub struct Known {
    /// The customer's company.
    pub company_id: CompanyId,
    /// The Facebook user behind the token.
    pub user: FacebookUser,
    /// The ad account's name.
    pub ad_account_name: String,
    /// Its business `(id, name)`.
    pub business: (String, String),
}

/// Creates a profile as `POST /profiles` does; its id.
pub async fn create(ctx: &ProfileContext, request: &NewProfile) -> Result<ProfileId, DemoError> {
    let id = ProfileId(uuid::Uuid::new_v4());
    let now = ctx.clock.now();
    let known = &request.known;
    let business = BusinessId::new(known.business.0.clone())
        .map_err(|e| DemoError::Profile(facebook_connector_core::Error::from(e)))?;
    let profile = StoredProfile {
        id,
        company_id: known.company_id,
        ad_account: AdAccount {
            id: request.ad_account_id.clone(),
            name: known.ad_account_name.clone(),
            business: Some(Business {
                id: business,
                name: known.business.1.clone(),
            }),
            user_accepted_custom_audience_tos: true,
        },
        audience: None,
        token: ctx
            .cipher
            .encrypt(id, &request.token)
            .map_err(DemoError::Profile)?,
        token_meta: TokenMeta::default(),
        facebook_user: known.user.clone(),
        delivery_state: DeliveryState::Ok,
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    ctx.store
        .insert_profile(&profile)
        .await
        .map_err(DemoError::Profile)?;
    Ok(id)
}

/// Replaces the token of a `needs_reauth` profile as `POST /profiles/{id}/reauthorize` does
/// (resuming its paused jobs).
pub async fn reauthorize(
    ctx: &ProfileContext,
    _customer: &SecretString,
    id: ProfileId,
    token: &SecretString,
) -> Result<(), DemoError> {
    let stored = ctx
        .store
        .get_profile(id)
        .await
        .map_err(DemoError::Profile)?
        .ok_or(DemoError::MissingProfile(id))?;
    let encrypted = ctx.cipher.encrypt(id, token).map_err(DemoError::Profile)?;
    ctx.store
        .reauthorize(
            id,
            &encrypted,
            &TokenMeta::default(),
            &stored.facebook_user,
            ctx.clock.now(),
        )
        .await
        .map_err(DemoError::Profile)?;
    Ok(())
}
