//! The Graph API client: one shared reqwest client (rustls with the ring provider), typed
//! calls, `appsecret_proof` on every user-token call, retries and the client-side limiter.
//!
//! By concern: [`transport`](self) (one call: the limiter's slot, sending, the retry policy,
//! error decoding), the account calls (token inspection and exchange, `/me`, ad accounts,
//! permission revocation), the audience calls (lookups, creation), the member uploads, and
//! the wire types (what Facebook's JSON looks like, decoded leniently).

mod accounts;
mod audiences;
mod transport;
mod uploads;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use crate::config::GraphConfig;
use crate::error::GraphError;
use crate::usage::Limiter;

pub use uploads::session_json;
pub use wire::AudienceDetails;

/// Fields asked for ad accounts.
pub const AD_ACCOUNT_FIELDS: &str = "id,name,business,user_tos_accepted";
/// Fields asked for audiences.
pub const AUDIENCE_FIELDS: &str = "id,account_id,name,description,time_created";
/// Page size of `/me/adaccounts`.
pub const AD_ACCOUNTS_PAGE_SIZE: u32 = 100;
/// Requests per batch call (Facebook's limit).
pub const MAX_BATCH_REQUESTS: usize = 50;
/// Ids per `?ids=` lookup.
pub const MAX_IDS_PER_LOOKUP: usize = 50;
/// Longest audience description Facebook accepts.
pub const MAX_DESCRIPTION_CHARS: usize = 100;

/// `appsecret_proof`: hex HMAC-SHA256 of the access token keyed with the app secret.
pub fn appsecret_proof(app_secret: &SecretString, access_token: &SecretString) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty proof
    // would only make Facebook reject the call.
    match Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(access_token.expose_secret().as_bytes());
            const_hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

struct Inner {
    http: reqwest::Client,
    cfg: GraphConfig,
    root: Url,
    app_token: SecretString,
    limiter: Limiter,
}

/// The Graph API client. Cheap to clone (one shared connection pool and limiter); `Debug`
/// never shows secrets.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// Builds the client (TLS with rustls and the ring provider).
    pub fn new(cfg: GraphConfig) -> Result<Self, GraphError> {
        let http = connector_resilience::client_builder()
            .map_err(|e| GraphError::Setup {
                reason: "cannot set up tls".into(),
                source: Some(Box::new(e)),
            })?
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // The Graph API never redirects; following one could carry a token (in the query
            // or in a re-sent form body) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("facebook-connector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Setup {
                reason: "cannot build the http client".into(),
                source: Some(Box::new(e.without_url())),
            })?;
        Self::with_http_client(cfg, http)
    }

    /// Builds the client around an existing reqwest client (shared connection pool). The
    /// given client should not follow redirects (see [`GraphClient::new`]).
    pub fn with_http_client(cfg: GraphConfig, http: reqwest::Client) -> Result<Self, GraphError> {
        if cfg.api_version.is_empty()
            || !cfg
                .api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Err(GraphError::Setup {
                reason: format!("api version {:?} is not like v25.0", cfg.api_version),
                source: None,
            });
        }
        if cfg.base_url.cannot_be_a_base() || cfg.base_url.host_str().is_none() {
            return Err(GraphError::Setup {
                reason: "base url must be an http(s) url with a host".into(),
                source: None,
            });
        }
        let mut root = cfg.base_url.clone();
        root.set_query(None);
        root.set_fragment(None);
        let path = format!("{}/{}/", root.path().trim_end_matches('/'), cfg.api_version);
        root.set_path(&path);
        let app_token =
            SecretString::from(format!("{}|{}", cfg.app_id, cfg.app_secret.expose_secret()));
        let limiter = Limiter::new(cfg.limiter.clone());
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                cfg,
                root,
                app_token,
                limiter,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// The versioned root every call is relative to, e.g. `https://graph.facebook.com/v25.0/`.
    pub fn root_url(&self) -> &Url {
        &self.inner.root
    }

    fn endpoint(&self, path: &str) -> Result<Url, GraphError> {
        self.inner.root.join(path).map_err(|e| GraphError::Setup {
            reason: format!("cannot form the url of {path}"),
            source: Some(Box::new(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let proof = appsecret_proof(
            &SecretString::from("Jefe".to_owned()),
            &SecretString::from("what do ya want for nothing?".to_owned()),
        );
        assert_eq!(
            proof,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn root_url_carries_the_version() {
        let cfg = GraphConfig::new("1", SecretString::from("s".to_owned()))
            .with_base_url(Url::parse("http://127.0.0.1:9/prefix/").unwrap());
        let client = GraphClient::new(cfg).unwrap();
        assert_eq!(
            client.root_url().as_str(),
            "http://127.0.0.1:9/prefix/v25.0/"
        );
        assert_eq!(
            client.endpoint("act_1/customaudiences").unwrap().as_str(),
            "http://127.0.0.1:9/prefix/v25.0/act_1/customaudiences"
        );
        let bad =
            GraphConfig::new("1", SecretString::from("s".to_owned())).with_api_version("../x");
        assert!(GraphClient::new(bad).is_err());
        assert_eq!(
            GraphConfig::new("1", SecretString::from("s".to_owned()))
                .base_url
                .as_str(),
            "https://graph.facebook.com/"
        );
    }
}
