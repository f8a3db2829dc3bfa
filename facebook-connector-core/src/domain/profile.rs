//! Profiles: a customer's Facebook login, encrypted long-lived token and ad account.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::{AdAccountId, AudienceId, BusinessId, CompanyId, FacebookUserId, ProfileId};

/// A Facebook business that owns an ad account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Business {
    /// Business id.
    pub id: BusinessId,
    /// Business name.
    pub name: String,
}

/// A Facebook ad account as the connector needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdAccount {
    /// Canonical `act_<digits>` id.
    pub id: AdAccountId,
    /// Display name.
    pub name: String,
    /// The owning business; audiences can only be created in accounts that have one.
    pub business: Option<Business>,
    /// Whether the user accepted the Custom Audience terms of service for this account.
    pub user_accepted_custom_audience_tos: bool,
}

impl AdAccount {
    /// Whether customer-file Custom Audiences can be created and filled in this account.
    pub fn supports_custom_audiences(&self) -> bool {
        self.business.is_some() && self.user_accepted_custom_audience_tos
    }
}

/// A Custom Audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// Audience id.
    pub id: AudienceId,
    /// Audience name.
    pub name: String,
}

/// The Facebook user behind a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacebookUser {
    /// App-scoped user id.
    pub id: FacebookUserId,
    /// Display name.
    pub name: String,
}

/// What `debug_token` says about a user token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Whether Facebook considers the token valid now.
    pub is_valid: bool,
    /// Granted permission scopes.
    pub scopes: Vec<String>,
    /// When the token was issued, if Facebook says.
    #[serde(with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    /// When it expires (`None` = never, e.g. a system-user token, or unknown).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the app's access to the user's data expires (about 90 days after the user last
    /// used the app), if Facebook says.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub data_access_expires_at: Option<OffsetDateTime>,
    /// The user the token belongs to.
    pub user_id: Option<FacebookUserId>,
}

/// What the connector remembers about a profile's stored token (from `debug_token` when it
/// was stored), so that expiry can be shown before it happens without calling Facebook.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// When Facebook issued the token, if known.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    /// When it expires (`None`: never, or Facebook did not say).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the app's data access expires, if Facebook said.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub data_access_expires_at: Option<OffsetDateTime>,
    /// The scopes granted when the token was stored.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl TokenMeta {
    /// The stored facts of a token Facebook described.
    pub fn from_info(info: &TokenInfo) -> TokenMeta {
        TokenMeta {
            issued_at: info.issued_at,
            expires_at: info.expires_at,
            data_access_expires_at: info.data_access_expires_at,
            scopes: info.scopes.clone(),
        }
    }

    /// The earlier of the two expiry times (the token or its data access), if any.
    pub fn first_expiry(&self) -> Option<OffsetDateTime> {
        match (self.expires_at, self.data_access_expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whole days left until [`TokenMeta::first_expiry`] (0 once it passed), `None` when
    /// the token never expires.
    pub fn expires_in_days(&self, now: OffsetDateTime) -> Option<i64> {
        self.first_expiry().map(|at| (at - now).whole_days().max(0))
    }
}

/// Scopes a profile's token must carry.
pub const REQUIRED_SCOPES: [&str; 2] = ["ads_management", "business_management"];

impl TokenInfo {
    /// Required scopes the token lacks, in [`REQUIRED_SCOPES`] order.
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        REQUIRED_SCOPES
            .iter()
            .copied()
            .filter(|s| !self.scopes.iter().any(|granted| granted == s))
            .collect()
    }
}

/// A long-lived user token from the exchange.
#[derive(Clone)]
pub struct LongLivedToken {
    /// The token itself; never logged.
    pub token: SecretString,
    /// Seconds until it expires, if Facebook says.
    pub expires_in: Option<u64>,
}

impl fmt::Debug for LongLivedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongLivedToken")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A token encrypted by a [`TokenCipher`](crate::ports::TokenCipher): an opaque string that
/// carries its key id. Safe to store and to print.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptedToken(pub String);

impl fmt::Debug for EncryptedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but there is no reason to fill logs with it.
        let key_id = self.0.split_once(':').map(|(k, _)| k).unwrap_or("?");
        write!(f, "EncryptedToken(key {key_id}, {} bytes)", self.0.len())
    }
}

/// Whether the worker can deliver for a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Deliveries run.
    Ok,
    /// The token stopped working; jobs are paused until the profile is re-authorised.
    NeedsReauth {
        /// Why (e.g. the Graph error's user-facing message).
        reason: String,
        /// Since when.
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
}

impl DeliveryState {
    /// `ok` or `needs_reauth`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryState::Ok => "ok",
            DeliveryState::NeedsReauth { .. } => "needs_reauth",
        }
    }
}

/// Lifecycle status of a profile (held by the marketplace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileStatus {
    /// Deliveries may be sent to it.
    Enabled,
    /// Created but not yet enabled (the initial state), or disabled by the customer.
    Disabled,
    /// Gone for good.
    Archived,
}

/// The connector's own record of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProfile {
    /// Same id as the marketplace profile.
    pub id: ProfileId,
    /// The owning company.
    pub company_id: CompanyId,
    /// The ad account deliveries go to.
    pub ad_account: AdAccount,
    /// A fixed audience for every delivery of this profile, if the customer chose one.
    pub audience: Option<Audience>,
    /// The long-lived user token, encrypted with the profile id as associated data.
    pub token: EncryptedToken,
    /// What `debug_token` said about the token when it was stored.
    pub token_meta: TokenMeta,
    /// The user who authorised the token.
    pub facebook_user: FacebookUser,
    /// Whether deliveries can run.
    pub delivery_state: DeliveryState,
    /// When the profile was archived locally (its token is then no longer used).
    pub archived_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn debug_output_never_shows_tokens() {
        let token = LongLivedToken {
            token: SecretString::from("EAAB-very-secret-token".to_owned()),
            expires_in: Some(5_184_000),
        };
        let printed = format!("{token:?}");
        assert!(!printed.contains("EAAB-very-secret-token"), "{printed}");
        assert_eq!(token.token.expose_secret(), "EAAB-very-secret-token");

        let encrypted = EncryptedToken("k1:AAAAbase64ciphertext".to_owned());
        let printed = format!("{encrypted:?}");
        assert!(!printed.contains("base64ciphertext"), "{printed}");
        assert!(printed.contains("k1"));
    }

    #[test]
    fn missing_scopes_are_listed_in_order() {
        let info = TokenInfo {
            is_valid: true,
            scopes: vec!["public_profile".into(), "business_management".into()],
            issued_at: None,
            expires_at: None,
            data_access_expires_at: None,
            user_id: None,
        };
        assert_eq!(info.missing_scopes(), vec!["ads_management"]);
    }

    #[test]
    fn custom_audiences_need_a_business_and_accepted_terms() {
        let mut account = AdAccount {
            id: AdAccountId::parse("1").unwrap(),
            name: "a".into(),
            business: None,
            user_accepted_custom_audience_tos: true,
        };
        assert!(!account.supports_custom_audiences());
        account.business = Some(Business {
            id: BusinessId::new("2").unwrap(),
            name: "b".into(),
        });
        assert!(account.supports_custom_audiences());
        account.user_accepted_custom_audience_tos = false;
        assert!(!account.supports_custom_audiences());
    }

    #[test]
    fn expiry_is_the_earlier_of_token_and_data_access() {
        let now = time::macros::datetime!(2026-12-01 12:00 UTC);
        let mut meta = TokenMeta::default();
        assert_eq!(
            meta.expires_in_days(now),
            None,
            "a token that never expires"
        );
        meta.expires_at = Some(now + time::Duration::days(59) + time::Duration::hours(3));
        assert_eq!(meta.expires_in_days(now), Some(59));
        meta.data_access_expires_at = Some(now + time::Duration::days(10));
        assert_eq!(meta.expires_in_days(now), Some(10));
        meta.expires_at = Some(now - time::Duration::days(2));
        assert_eq!(meta.expires_in_days(now), Some(0));
    }

    #[test]
    fn delivery_state_serializes_with_a_state_tag() {
        let json = serde_json::to_value(DeliveryState::Ok).unwrap();
        assert_eq!(json, serde_json::json!({"state": "ok"}));
    }
}
