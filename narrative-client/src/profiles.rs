//! [`ProfileClient`]: the customer-token calls of the HTTP API (company and installation
//! whoami, the installation's profiles).

use async_trait::async_trait;
use facebook_connector_core::domain::{CompanyId, ProfileId, ProfileStatus};
use facebook_connector_core::ports::{
    InstallationId, MarketplaceProfile, ProfileDirectory, ProfileTransition,
};
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::config::HttpConfig;
use crate::error::NarrativeError;
use crate::http::{Call, Credential, Transport};

/// Marketplace calls made with the customer's own bearer token (as received by bin-api). A
/// refused token is [`NarrativeError::CustomerUnauthorized`] (core `InvalidToken`); a profile that
/// is not the installation's (404) is `None`.
pub struct ProfileClient {
    transport: Transport,
}

impl std::fmt::Debug for ProfileClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileClient")
            .field(
                "base_url",
                &connector_resilience::redacted_url(&self.transport.base),
            )
            .finish()
    }
}

#[derive(Deserialize)]
struct Whoami<T> {
    id: T,
}

/// `{records: [...]}` as documented, or a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Records<T> {
    Wrapped { records: Vec<T> },
    Bare(Vec<T>),
}

/// A profile as the marketplace sends it: the status is read case-insensitively and unknown
/// fields are ignored.
#[derive(Deserialize)]
struct RawProfile {
    id: ProfileId,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    status: String,
}

impl RawProfile {
    fn into_profile(self, endpoint: &str) -> Result<MarketplaceProfile, NarrativeError> {
        let status = match self.status.trim().to_ascii_lowercase().as_str() {
            "enabled" => ProfileStatus::Enabled,
            "disabled" => ProfileStatus::Disabled,
            "archived" => ProfileStatus::Archived,
            _ => {
                return Err(NarrativeError::Invalid {
                    endpoint: endpoint.to_owned(),
                    source: facebook_connector_core::InvalidValue::new(
                        "profile status",
                        &self.status,
                        "expected enabled, disabled or archived",
                    ),
                });
            }
        };
        Ok(MarketplaceProfile {
            id: self.id,
            name: self.name.unwrap_or_default(),
            description: self.description,
            status,
        })
    }
}

fn profile_of(
    raw: Option<RawProfile>,
    endpoint: &str,
) -> Result<Option<MarketplaceProfile>, NarrativeError> {
    raw.map(|raw| raw.into_profile(endpoint)).transpose()
}

impl ProfileClient {
    /// A client for the marketplace at `base_url`.
    pub fn new(base_url: Url, http: HttpConfig) -> Result<Self, NarrativeError> {
        Ok(ProfileClient {
            transport: Transport::new(base_url, http)?,
        })
    }

    fn call<'a>(
        &self,
        method: Method,
        token: &'a SecretString,
        path: &str,
        segments: &[&str],
    ) -> Result<Call<'a>, NarrativeError> {
        Ok(Call::new(
            method,
            self.transport.url(path, segments)?,
            Credential::Customer(token),
        ))
    }

    /// `GET /company-info/whoami`.
    pub async fn company_id(&self, token: &SecretString) -> Result<CompanyId, NarrativeError> {
        let call = self.call(Method::GET, token, "/company-info/whoami", &[])?;
        let who: Whoami<CompanyId> = self.transport.json(&call).await?;
        Ok(who.id)
    }

    /// `GET /installations/whoami` (\[ASSUMED\]); the id may be an integer or a uuid.
    pub async fn installation_id(
        &self,
        token: &SecretString,
    ) -> Result<InstallationId, NarrativeError> {
        let call = self.call(Method::GET, token, "/installations/whoami", &[])?;
        #[derive(Deserialize)]
        struct InstallationWhoami {
            #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
            id: Option<String>,
        }
        let who: InstallationWhoami = self.transport.json(&call).await?;
        let Some(id) = who
            .id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
        else {
            return Err(NarrativeError::Invalid {
                endpoint: call.endpoint.clone(),
                source: facebook_connector_core::InvalidValue::new(
                    "installation id",
                    "",
                    "expected an integer or a uuid",
                ),
            });
        };
        Ok(InstallationId(id))
    }

    /// `GET /installations/{installation}/profiles`.
    pub async fn profiles(
        &self,
        token: &SecretString,
        installation: &InstallationId,
    ) -> Result<Vec<MarketplaceProfile>, NarrativeError> {
        let call = self.call(
            Method::GET,
            token,
            "/installations",
            &[&installation.0, "profiles"],
        )?;
        let records = match self.transport.json::<Records<RawProfile>>(&call).await? {
            Records::Wrapped { records } | Records::Bare(records) => records,
        };
        records
            .into_iter()
            .map(|raw| raw.into_profile(&call.endpoint))
            .collect()
    }

    /// `GET /installations/{installation}/profiles/{id}`; `None` on 404.
    pub async fn profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
    ) -> Result<Option<MarketplaceProfile>, NarrativeError> {
        let call = self.call(
            Method::GET,
            token,
            "/installations",
            &[&installation.0, "profiles", &id.to_string()],
        )?;
        profile_of(self.transport.json_opt(&call).await?, &call.endpoint)
    }

    /// `POST /installations/{installation}/profiles` `{name, description}` (not retried).
    pub async fn create(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        name: &str,
        description: Option<String>,
    ) -> Result<MarketplaceProfile, NarrativeError> {
        let call = self
            .call(
                Method::POST,
                token,
                "/installations",
                &[&installation.0, "profiles"],
            )?
            .json(json!({"name": name, "description": description}));
        let raw: RawProfile = self.transport.json(&call).await?;
        raw.into_profile(&call.endpoint)
    }

    /// `PUT /installations/{installation}/profiles/{id}` `{name, description}`; `None` on 404.
    pub async fn update(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        name: &str,
        description: Option<String>,
    ) -> Result<Option<MarketplaceProfile>, NarrativeError> {
        let call = self
            .call(
                Method::PUT,
                token,
                "/installations",
                &[&installation.0, "profiles", &id.to_string()],
            )?
            .json(json!({"name": name, "description": description}));
        profile_of(self.transport.json_opt(&call).await?, &call.endpoint)
    }

    /// `POST /installations/{installation}/profiles/{id}/archive|disable|enable` (not
    /// retried); `None` on 404.
    pub async fn transition(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        transition: ProfileTransition,
    ) -> Result<Option<MarketplaceProfile>, NarrativeError> {
        let action = match transition {
            ProfileTransition::Archive => "archive",
            ProfileTransition::Disable => "disable",
            ProfileTransition::Enable => "enable",
        };
        let call = self.call(
            Method::POST,
            token,
            "/installations",
            &[&installation.0, "profiles", &id.to_string(), action],
        )?;
        profile_of(self.transport.json_opt(&call).await?, &call.endpoint)
    }
}

#[async_trait]
impl ProfileDirectory for ProfileClient {
    async fn company(&self, token: &SecretString) -> facebook_connector_core::Result<CompanyId> {
        Ok(self.company_id(token).await?)
    }

    async fn installation(
        &self,
        token: &SecretString,
    ) -> facebook_connector_core::Result<InstallationId> {
        Ok(self.installation_id(token).await?)
    }

    async fn list_profiles(
        &self,
        token: &SecretString,
        installation: &InstallationId,
    ) -> facebook_connector_core::Result<Vec<MarketplaceProfile>> {
        Ok(self.profiles(token, installation).await?)
    }

    async fn get_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
    ) -> facebook_connector_core::Result<Option<MarketplaceProfile>> {
        Ok(self.profile(token, installation, id).await?)
    }

    async fn create_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        name: &str,
        description: Option<String>,
    ) -> facebook_connector_core::Result<MarketplaceProfile> {
        Ok(self.create(token, installation, name, description).await?)
    }

    async fn update_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        name: &str,
        description: Option<String>,
    ) -> facebook_connector_core::Result<Option<MarketplaceProfile>> {
        Ok(self
            .update(token, installation, id, name, description)
            .await?)
    }

    async fn transition_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        transition: ProfileTransition,
    ) -> facebook_connector_core::Result<Option<MarketplaceProfile>> {
        Ok(self.transition(token, installation, id, transition).await?)
    }
}
