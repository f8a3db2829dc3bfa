//! App authentication: an OAuth client-credentials grant (HTTP Basic), refreshed before expiry
//! with the refresh-token grant, renewed once when a call gets a 401, and replaced by a new
//! client-credentials grant when a refresh fails.
//!
//! Renewals are single-flight: the token state sits behind one async mutex that is held while a
//! grant is requested, so concurrent callers wait for the one renewal in flight and then use its
//! token. A 401 renewal carries the *generation* of the token that was refused; when another
//! caller already replaced that token, the waiting caller simply uses the new one.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::error::NarrativeError;
use crate::http::{Transport, request_error, retrying};

/// Lifetime assumed when the token response does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// An app token handed to a caller, with the generation it belongs to.
pub(crate) struct AppToken {
    pub(crate) secret: SecretString,
    pub(crate) generation: u64,
}

struct Issued {
    access: SecretString,
    /// When to renew it (before its expiry, by the configured margin).
    renew_at: Instant,
    refresh: Option<(SecretString, Option<Instant>)>,
}

#[derive(Default)]
struct State {
    current: Option<Issued>,
    generation: u64,
}

/// The app's credentials and its current token.
pub(crate) struct AppAuth {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    margin: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    ClientCredentials,
    RefreshToken,
}

impl Grant {
    fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::RefreshToken => "refresh_token",
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(
        default,
        alias = "expires_in",
        deserialize_with = "connector_resilience::lenient::opt_text"
    )]
    access_token_expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    refresh_token_expires_in: Option<u64>,
}

impl AppAuth {
    pub(crate) fn new(
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        margin: Duration,
    ) -> Self {
        AppAuth {
            token_url,
            client_id,
            client_secret,
            margin,
            state: Mutex::new(State::default()),
        }
    }

    /// The current token, renewing it first when it is missing or about to expire.
    pub(crate) async fn token(&self, transport: &Transport) -> Result<AppToken, NarrativeError> {
        let mut state = self.state.lock().await;
        if let Some(issued) = &state.current
            && issued.renew_at > Instant::now()
        {
            return Ok(AppToken {
                secret: issued.access.clone(),
                generation: state.generation,
            });
        }
        self.renew(transport, &mut state).await
    }

    /// Renews the token after the marketplace refused the one of `generation` (unless another
    /// caller already did).
    pub(crate) async fn renew_rejected(
        &self,
        transport: &Transport,
        generation: u64,
    ) -> Result<AppToken, NarrativeError> {
        let mut state = self.state.lock().await;
        if state.generation != generation
            && let Some(issued) = &state.current
        {
            return Ok(AppToken {
                secret: issued.access.clone(),
                generation: state.generation,
            });
        }
        self.renew(transport, &mut state).await
    }

    /// Refresh grant when a usable refresh token exists, else (or when it fails) a new
    /// client-credentials grant. Called with the state locked: one renewal at a time.
    async fn renew(
        &self,
        transport: &Transport,
        state: &mut State,
    ) -> Result<AppToken, NarrativeError> {
        let refresh = state
            .current
            .take()
            .and_then(|issued| issued.refresh)
            .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > Instant::now()));
        let mut issued = None;
        if let Some((refresh_token, _)) = refresh {
            match self
                .grant(transport, Grant::RefreshToken, Some(&refresh_token))
                .await
            {
                Ok(token) => issued = Some(token),
                Err(error) => tracing::warn!(
                    error = %error,
                    "app token refresh failed, requesting a new client-credentials grant"
                ),
            }
        }
        let issued = match issued {
            Some(issued) => issued,
            None => {
                self.grant(transport, Grant::ClientCredentials, None)
                    .await?
            }
        };
        let secret = issued.access.clone();
        state.current = Some(issued);
        state.generation = state.generation.wrapping_add(1);
        Ok(AppToken {
            secret,
            generation: state.generation,
        })
    }

    async fn grant(
        &self,
        transport: &Transport,
        grant: Grant,
        refresh_token: Option<&SecretString>,
    ) -> Result<Issued, NarrativeError> {
        let endpoint = format!("POST {}", self.token_url.path());
        tracing::info!(grant = grant.name(), "requesting a marketplace app token");
        retrying(&transport.config.retry, true, &endpoint, || async {
            let mut form: Vec<(&str, &str)> = vec![("grant_type", grant.name())];
            if let Some(refresh_token) = refresh_token {
                form.push(("refresh_token", refresh_token.expose_secret()));
            }
            let response = transport
                .http
                .post(self.token_url.clone())
                .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                .form(&form)
                .timeout(transport.config.request_timeout)
                .send()
                .await
                .map_err(|e| request_error(&endpoint, e))?;
            let status = response.status();
            if !status.is_success() {
                // The OAuth error code only: the body is not kept.
                let body = crate::http::read_capped(response, 16 * 1024).await;
                let (error, _) = crate::http::error_fields(&body);
                return Err(NarrativeError::Grant {
                    grant: grant.name(),
                    status: status.as_u16(),
                    error,
                });
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| request_error(&endpoint, e))?;
            // serde's messages may quote values: replace them, a token must never reach an error
            let token: TokenResponse =
                serde_json::from_slice(&body).map_err(|_| NarrativeError::Decode {
                    endpoint: endpoint.clone(),
                    source: <serde_json::Error as serde::de::Error>::custom(
                        "token response is not the expected json object",
                    ),
                })?;
            Ok(self.issued(token))
        })
        .await
    }

    fn issued(&self, token: TokenResponse) -> Issued {
        let now = Instant::now();
        let lifetime = token
            .access_token_expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let margin = self.margin.min(lifetime / 2);
        Issued {
            access: token.access_token,
            renew_at: now + lifetime.saturating_sub(margin),
            refresh: token.refresh_token.map(|refresh| {
                (
                    refresh,
                    token
                        .refresh_token_expires_in
                        .map(|s| now + Duration::from_secs(s)),
                )
            }),
        }
    }
}
