//! The JSON the API reads and writes (operations.md, "HTTP API responses"): snake_case, times
//! RFC 3339, ad account ids `act_<digits>`. Request types holding a Facebook token keep it in a
//! [`SecretString`] from the moment it is parsed, so their `Debug` never shows it.

use facebook_connector_core::domain::{
    AdAccount, Audience, DeliveryState, FacebookUser, ProfileStatus,
};
use facebook_connector_core::profiles::{ProfileView, TokenMetadata, TokenView};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(at: OffsetDateTime) -> String {
    // formatting a valid UTC time as RFC 3339 cannot fail for years 0..=9999
    at.format(&Rfc3339).unwrap_or_default()
}

fn opt_rfc3339(at: Option<OffsetDateTime>) -> Option<String> {
    at.map(rfc3339)
}

/// `POST /tokens/metadata`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenMetadataRequest {
    /// A Facebook user token (never logged).
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// `POST /profiles`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProfileRequest {
    /// Name shown to the customer.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// The ad account, `act_<digits>` or `<digits>`.
    pub ad_account_id: String,
    /// The Facebook user token from the UI's Facebook login (never logged).
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// `POST /profiles/{id}/reauthorize`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReauthorizeRequest {
    /// A fresh Facebook user token of the profile's Facebook user (never logged).
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// A profile's lifecycle status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Deliveries may be sent to it.
    Enabled,
    /// Created, not enabled yet (or disabled).
    Disabled,
    /// Gone for good.
    Archived,
}

impl From<ProfileStatus> for Status {
    fn from(s: ProfileStatus) -> Self {
        match s {
            ProfileStatus::Enabled => Status::Enabled,
            ProfileStatus::Disabled => Status::Disabled,
            ProfileStatus::Archived => Status::Archived,
        }
    }
}

/// A Facebook business.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BusinessDto {
    /// Business id.
    pub id: String,
    /// Business name.
    pub name: String,
}

/// A Facebook ad account.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdAccountDto {
    /// `act_<digits>`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The owning business, if any.
    pub business: Option<BusinessDto>,
    /// Whether Custom Audiences can be used (a business and accepted terms).
    pub supports_custom_audiences: bool,
    /// Whether the user accepted the Custom Audience terms for this account.
    pub user_accepted_custom_audience_tos: bool,
}

impl From<&AdAccount> for AdAccountDto {
    fn from(a: &AdAccount) -> Self {
        AdAccountDto {
            id: a.id.to_string(),
            name: a.name.clone(),
            business: a.business.as_ref().map(|b| BusinessDto {
                id: b.id.to_string(),
                name: b.name.clone(),
            }),
            supports_custom_audiences: a.supports_custom_audiences(),
            user_accepted_custom_audience_tos: a.user_accepted_custom_audience_tos,
        }
    }
}

/// A Custom Audience.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AudienceDto {
    /// Audience id.
    pub id: String,
    /// Audience name.
    pub name: String,
}

impl From<&Audience> for AudienceDto {
    fn from(a: &Audience) -> Self {
        AudienceDto {
            id: a.id.to_string(),
            name: a.name.clone(),
        }
    }
}

/// The Facebook user behind a token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    /// App-scoped user id.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl From<&FacebookUser> for UserDto {
    fn from(u: &FacebookUser) -> Self {
        UserDto {
            id: u.id.to_string(),
            name: u.name.clone(),
        }
    }
}

/// A profile's stored token: validity and expiry, without calling Facebook.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileTokenDto {
    /// Whether the token is believed to work (not `needs_reauth`, not expired).
    pub is_valid: bool,
    /// When Facebook issued it.
    #[schema(format = DateTime)]
    pub issued_at: Option<String>,
    /// When it expires; null when it never expires.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// When the app's access to the user's data expires.
    #[schema(format = DateTime)]
    pub data_access_expires_at: Option<String>,
    /// Whole days until the earlier of the two expiries (0 once passed); null: never.
    pub expires_in_days: Option<i64>,
    /// Scopes granted when the token was stored.
    pub scopes: Vec<String>,
    /// The Facebook user who authorised it.
    pub user: UserDto,
}

impl From<&TokenView> for ProfileTokenDto {
    fn from(t: &TokenView) -> Self {
        ProfileTokenDto {
            is_valid: t.is_valid,
            issued_at: opt_rfc3339(t.issued_at),
            expires_at: opt_rfc3339(t.expires_at),
            data_access_expires_at: opt_rfc3339(t.data_access_expires_at),
            expires_in_days: t.expires_in_days,
            scopes: t.scopes.clone(),
            user: UserDto::from(&t.user),
        }
    }
}

/// `ok` or `needs_reauth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStateKind {
    /// Deliveries run.
    Ok,
    /// The token stopped working; deliveries wait for re-authorisation.
    NeedsReauth,
}

/// Whether the worker can deliver for the profile.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryStateDto {
    /// `ok` or `needs_reauth`.
    pub state: DeliveryStateKind,
    /// Why it needs re-authorisation (null when `ok`).
    pub reason: Option<String>,
    /// Since when (null when `ok`).
    #[schema(format = DateTime)]
    pub since: Option<String>,
}

impl From<&DeliveryState> for DeliveryStateDto {
    fn from(s: &DeliveryState) -> Self {
        match s {
            DeliveryState::Ok => DeliveryStateDto {
                state: DeliveryStateKind::Ok,
                reason: None,
                since: None,
            },
            DeliveryState::NeedsReauth { reason, since } => DeliveryStateDto {
                state: DeliveryStateKind::NeedsReauth,
                reason: Some(reason.clone()),
                since: Some(rfc3339(*since)),
            },
        }
    }
}

/// A profile.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileDto {
    /// The marketplace profile id (a uuid).
    #[schema(format = Uuid)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `enabled`, `disabled` or `archived`.
    pub status: Status,
    /// The ad account deliveries go to.
    pub ad_account: AdAccountDto,
    /// The profile-wide audience, or null.
    pub audience: Option<AudienceDto>,
    /// The owning company.
    pub company_id: i64,
    /// Creation time.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The stored token.
    pub token: ProfileTokenDto,
    /// Whether deliveries can run.
    pub delivery_state: DeliveryStateDto,
}

impl From<&ProfileView> for ProfileDto {
    fn from(p: &ProfileView) -> Self {
        ProfileDto {
            id: p.id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            status: p.status.into(),
            ad_account: AdAccountDto::from(&p.ad_account),
            audience: p.audience.as_ref().map(AudienceDto::from),
            company_id: p.company_id.0,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
            token: ProfileTokenDto::from(&p.token),
            delivery_state: DeliveryStateDto::from(&p.delivery_state),
        }
    }
}

/// `GET /profiles`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileList {
    /// The caller's company's profiles, oldest first.
    pub records: Vec<ProfileDto>,
}

/// What `debug_token` says about a token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenInfoDto {
    /// Whether Facebook considers the token valid now.
    pub is_valid: bool,
    /// When it was issued.
    #[schema(format = DateTime)]
    pub issued_at: Option<String>,
    /// When it expires; null when it never expires (or Facebook did not say).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// When the app's data access expires.
    #[schema(format = DateTime)]
    pub data_access_expires_at: Option<String>,
    /// Whole days until the earlier expiry; null: never or unknown.
    pub expires_in_days: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The user, when the token is valid.
    pub user: Option<UserDto>,
}

/// `POST /tokens/metadata`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenMetadataResponse {
    /// The token.
    pub token: TokenInfoDto,
    /// Ad accounts the token can use (only for a valid token with `ads_management`).
    pub ad_accounts: Vec<AdAccountDto>,
}

impl From<&TokenMetadata> for TokenMetadataResponse {
    fn from(m: &TokenMetadata) -> Self {
        TokenMetadataResponse {
            token: TokenInfoDto {
                is_valid: m.info.is_valid,
                issued_at: opt_rfc3339(m.info.issued_at),
                expires_at: opt_rfc3339(m.info.expires_at),
                data_access_expires_at: opt_rfc3339(m.info.data_access_expires_at),
                expires_in_days: m.expires_in_days,
                scopes: m.info.scopes.clone(),
                user: m.user.as_ref().map(UserDto::from),
            },
            ad_accounts: m.ad_accounts.iter().map(AdAccountDto::from).collect(),
        }
    }
}

/// `POST /profiles/disconnect`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct DisconnectResponse {
    /// Profiles archived.
    pub archived: u64,
    /// Facebook users whose permissions for the app were revoked.
    pub revoked: u64,
}

/// The error object.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case code: `unauthorized`, `forbidden`, `not_found`, `invalid_request`,
    /// `invalid_token`, `missing_scopes`, `invalid_ad_account`, `different_facebook_user`,
    /// `needs_reauth`, `invalid_state`, `payload_too_large`, `method_not_allowed`,
    /// `upstream_error`, `timeout`, `internal_error`.
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The request id (5xx only; also at the top level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every error answer: `{"error": {"code", "message"}}`, plus `request_id` on 5xx.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The request id (5xx only), as in the `x-request-id` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_debug_never_shows_the_token() {
        let body = r#"{"name":"n","ad_account_id":"1","token":"EAAF-secret-token-value"}"#;
        let create: CreateProfileRequest = serde_json::from_str(body).unwrap();
        let meta: TokenMetadataRequest =
            serde_json::from_str(r#"{"token":"EAAF-secret-token-value"}"#).unwrap();
        let reauth: ReauthorizeRequest =
            serde_json::from_str(r#"{"token":"EAAF-secret-token-value"}"#).unwrap();
        let printed = format!("{create:?} {meta:?} {reauth:?}");
        assert!(!printed.contains("secret-token-value"), "{printed}");
    }
}
