//! Inputs and outputs of the profile operations.

use std::fmt;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::domain::{
    AdAccount, Audience, CompanyId, DeliveryState, FacebookUser, ProfileId, ProfileStatus,
    StoredProfile, TokenInfo, TokenMeta,
};
use crate::ports::InstallationId;

/// The customer behind a marketplace bearer token: the token (forwarded to the marketplace on
/// every call, never logged: redacted in `Debug`), their company and their installation.
#[derive(Clone)]
pub struct Caller {
    /// The customer's marketplace bearer token.
    pub token: SecretString,
    /// The company the marketplace says the token belongs to.
    pub company: CompanyId,
    /// The app installation behind the token.
    pub installation: InstallationId,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("token", &"[redacted]")
            .field("company", &self.company)
            .field("installation", &self.installation)
            .finish()
    }
}

/// `POST /profiles`: what the customer saves.
#[derive(Clone)]
pub struct NewProfile {
    /// Name shown to the customer (1 to 255 characters after trimming).
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The chosen ad account, `act_<digits>` or `<digits>`.
    pub ad_account_id: String,
    /// The (short-lived) Facebook user token from the UI's Facebook login.
    pub token: SecretString,
}

impl fmt::Debug for NewProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProfile")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("ad_account_id", &self.ad_account_id)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// What the connector shows about a profile's stored token (no Facebook call needed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenView {
    /// Whether the token is believed to work: the profile is not `needs_reauth` and neither
    /// the token nor its data access has expired.
    pub is_valid: bool,
    /// When Facebook issued it.
    pub issued_at: Option<OffsetDateTime>,
    /// When it expires (`None`: never).
    pub expires_at: Option<OffsetDateTime>,
    /// When the app's data access expires.
    pub data_access_expires_at: Option<OffsetDateTime>,
    /// Whole days until the earlier of the two expiries (0 once passed; `None`: never).
    pub expires_in_days: Option<i64>,
    /// Granted scopes when stored.
    pub scopes: Vec<String>,
    /// The Facebook user who authorised it.
    pub user: FacebookUser,
}

impl TokenView {
    /// The view of a stored token at `now`.
    pub fn of(
        meta: &TokenMeta,
        user: &FacebookUser,
        state: &DeliveryState,
        now: OffsetDateTime,
    ) -> TokenView {
        let expired = meta.first_expiry().is_some_and(|at| at <= now);
        TokenView {
            is_valid: matches!(state, DeliveryState::Ok) && !expired,
            issued_at: meta.issued_at,
            expires_at: meta.expires_at,
            data_access_expires_at: meta.data_access_expires_at,
            expires_in_days: meta.expires_in_days(now),
            scopes: meta.scopes.clone(),
            user: user.clone(),
        }
    }
}

/// A profile as the customer sees it: the marketplace's name, description and status joined
/// with the connector's ad account, audience, token facts and delivery state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileView {
    /// The marketplace profile id.
    pub id: ProfileId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Lifecycle status (the marketplace's; `archived` once archived here).
    pub status: ProfileStatus,
    /// The ad account deliveries go to.
    pub ad_account: AdAccount,
    /// The profile-wide audience, if any.
    pub audience: Option<Audience>,
    /// The owning company.
    pub company_id: CompanyId,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// The stored token's facts.
    pub token: TokenView,
    /// `ok`, or `needs_reauth` with reason and time.
    pub delivery_state: DeliveryState,
}

impl ProfileView {
    /// Joins a stored profile with the marketplace's name, description and status.
    pub fn join(
        stored: &StoredProfile,
        name: String,
        description: Option<String>,
        status: ProfileStatus,
        now: OffsetDateTime,
    ) -> ProfileView {
        let status = if stored.archived_at.is_some() {
            ProfileStatus::Archived
        } else {
            status
        };
        ProfileView {
            id: stored.id,
            name,
            description,
            status,
            ad_account: stored.ad_account.clone(),
            audience: stored.audience.clone(),
            company_id: stored.company_id,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            token: TokenView::of(
                &stored.token_meta,
                &stored.facebook_user,
                &stored.delivery_state,
                now,
            ),
            delivery_state: stored.delivery_state.clone(),
        }
    }
}

/// `POST /tokens/metadata`: who a Facebook token belongs to, its scopes and its ad accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMetadata {
    /// What `debug_token` said.
    pub info: TokenInfo,
    /// The user, when the token is valid.
    pub user: Option<FacebookUser>,
    /// Whole days until the token or its data access expires (`None`: never or unknown).
    pub expires_in_days: Option<i64>,
    /// The ad accounts the token can use (only when valid and granted `ads_management`).
    pub ad_accounts: Vec<AdAccount>,
}

/// `POST /profiles/{id}/reauthorize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reauthorized {
    /// The profile after re-authorisation.
    pub profile: ProfileView,
    /// How many paused jobs were resumed.
    pub resumed_jobs: u64,
}

/// `POST /profiles/disconnect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disconnected {
    /// Profiles archived by this call.
    pub archived: u64,
    /// Facebook users whose permissions for the app were revoked.
    pub revoked: u64,
}
