//! What the Graph API's JSON looks like, decoded leniently: ids and counts may arrive as
//! strings or numbers (one mechanism, `connector_resilience::lenient`), unknown fields are
//! ignored.

use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, Business, BusinessId,
};
use secrecy::SecretString;
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::warn;

/// An audience as `GET /?ids=` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudienceDetails {
    /// Audience id.
    pub id: AudienceId,
    /// The ad account's numeric id (without `act_`), when Facebook says.
    pub account_id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time, when Facebook says.
    pub time_created: Option<OffsetDateTime>,
}

impl From<AudienceDetails> for Audience {
    fn from(a: AudienceDetails) -> Self {
        Audience {
            id: a.id,
            name: a.name,
        }
    }
}

/// A Unix time; 0 (Facebook's "never" / "unknown") and absent are `None`.
pub(super) fn unix_time(secs: Option<i64>) -> Option<OffsetDateTime> {
    secs.filter(|s| *s > 0)
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

/// `GET /debug_token`'s envelope.
#[derive(Deserialize)]
pub(super) struct DebugToken {
    pub(super) data: DebugTokenData,
}

#[derive(Deserialize)]
pub(super) struct DebugTokenData {
    #[serde(default)]
    pub(super) is_valid: bool,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) issued_at: Option<i64>,
    /// 0 = never.
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) expires_at: Option<i64>,
    /// 0 or absent = not known.
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) data_access_expires_at: Option<i64>,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) user_id: Option<String>,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) app_id: Option<String>,
}

/// `GET /me`.
#[derive(Deserialize)]
pub(super) struct Me {
    #[serde(deserialize_with = "connector_resilience::lenient::text")]
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
}

/// The long-lived token exchange.
#[derive(Deserialize)]
pub(super) struct Exchange {
    pub(super) access_token: SecretString,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    pub(super) expires_in: Option<u64>,
}

/// A page of `/me/adaccounts`.
#[derive(Deserialize)]
pub(super) struct AdAccountsPage {
    #[serde(default)]
    pub(super) data: Vec<AdAccountNode>,
    #[serde(default)]
    pub(super) paging: Option<Paging>,
}

#[derive(Deserialize)]
pub(super) struct Paging {
    #[serde(default)]
    pub(super) next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct AdAccountNode {
    #[serde(deserialize_with = "connector_resilience::lenient::text")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    business: Option<BusinessNode>,
    #[serde(default)]
    user_tos_accepted: Option<TosAccepted>,
}

#[derive(Deserialize)]
struct BusinessNode {
    #[serde(deserialize_with = "connector_resilience::lenient::text")]
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct TosAccepted {
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    custom_audience_tos: Option<i64>,
}

impl AdAccountNode {
    pub(super) fn into_domain(self) -> Option<AdAccount> {
        let id = match AdAccountId::parse(&self.id) {
            Ok(id) => id,
            Err(_) => {
                warn!("skipping an ad account with an unexpected id");
                return None;
            }
        };
        let business = self.business.and_then(|b| {
            BusinessId::new(b.id)
                .ok()
                .map(|id| Business { id, name: b.name })
        });
        let tos = self
            .user_tos_accepted
            .is_some_and(|t| t.custom_audience_tos == Some(1));
        Some(AdAccount {
            id,
            name: self.name,
            business,
            user_accepted_custom_audience_tos: tos,
        })
    }
}

#[derive(Clone, Deserialize)]
pub(super) struct AudienceNode {
    #[serde(deserialize_with = "connector_resilience::lenient::text")]
    id: String,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    account_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// A Unix time (number or numeric string) or ISO 8601 text.
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    time_created: Option<String>,
}

impl AudienceNode {
    pub(super) fn into_domain(self) -> Option<AudienceDetails> {
        let id = AudienceId::parse(&self.id).ok()?;
        let time_created = self.time_created.and_then(|t| match t.parse::<i64>() {
            Ok(secs) => unix_time(Some(secs)),
            Err(_) => {
                OffsetDateTime::parse(&t, &time::format_description::well_known::Iso8601::DEFAULT)
                    .ok()
            }
        });
        Some(AudienceDetails {
            id,
            account_id: self.account_id,
            name: self.name,
            description: self.description,
            time_created,
        })
    }
}

/// `POST /act_{id}/customaudiences`.
#[derive(Deserialize)]
pub(super) struct Created {
    #[serde(deserialize_with = "connector_resilience::lenient::text")]
    pub(super) id: String,
}

/// The answer to an upload: with a session, the session's running totals.
#[derive(Deserialize)]
pub(super) struct UploadResponse {
    #[serde(default, deserialize_with = "connector_resilience::lenient::text")]
    pub(super) num_received: u64,
    #[serde(default, deserialize_with = "connector_resilience::lenient::text")]
    pub(super) num_invalid_entries: u64,
}

/// One answer of a batch request.
#[derive(Deserialize)]
pub(super) struct BatchAnswer {
    pub(super) code: u16,
    #[serde(default)]
    pub(super) body: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_accept_ids_and_times_as_strings_or_numbers() {
        let a: AudienceNode = serde_json::from_str(
            r#"{"id": 2384, "account_id": 77, "name": "x", "time_created": "1700000000"}"#,
        )
        .unwrap();
        let a = a.into_domain().unwrap();
        assert_eq!(a.id.as_str(), "2384");
        assert_eq!(a.account_id.as_deref(), Some("77"));
        assert_eq!(a.time_created.unwrap().unix_timestamp(), 1_700_000_000);
        let b: AudienceNode =
            serde_json::from_str(r#"{"id": "2384", "time_created": "2024-05-01T10:00:00+0000"}"#)
                .unwrap();
        assert!(b.into_domain().unwrap().time_created.is_some());

        let acct: AdAccountNode = serde_json::from_str(
            r#"{"id": "act_1", "business": {"id": 9, "name": "b"}, "user_tos_accepted": {"custom_audience_tos": "1"}}"#,
        )
        .unwrap();
        let acct = acct.into_domain().unwrap();
        assert!(acct.user_accepted_custom_audience_tos);
        assert_eq!(acct.business.unwrap().id.as_str(), "9");

        let token: DebugToken = serde_json::from_str(
            r#"{"data": {"is_valid": true, "expires_at": 0, "data_access_expires_at": "1800000000", "user_id": 42}}"#,
        )
        .unwrap();
        assert_eq!(unix_time(token.data.expires_at), None, "0 is never");
        assert_eq!(
            unix_time(token.data.data_access_expires_at).map(|t| t.unix_timestamp()),
            Some(1_800_000_000)
        );
        assert_eq!(token.data.user_id.as_deref(), Some("42"));
    }
}
