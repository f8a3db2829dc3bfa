//! Authentication: the customer's `Authorization: Bearer <marketplace token>` is forwarded to
//! the marketplace to learn the company and installation. Answers are cached briefly, keyed by
//! the token's SHA-256 (the cache never holds a token); refusals are not cached. The token is
//! never logged: it lives in a `SecretString` from the header on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use facebook_connector_core::domain::CompanyId;
use facebook_connector_core::ports::InstallationId;
use facebook_connector_core::profiles::Caller;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::app::AppState;
use crate::error::ApiError;

/// Most callers remembered at once; beyond that, expired entries are dropped, then all.
const MAX_ENTRIES: usize = 10_000;

/// Remembers which company and installation a bearer token belongs to, for a short while.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (CompanyId, InstallationId, Instant)>>,
}

impl AuthCache {
    /// A cache keeping answers for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> AuthCache {
        AuthCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(token: &SecretString) -> [u8; 32] {
        Sha256::digest(token.expose_secret().as_bytes()).into()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (CompanyId, InstallationId, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, token: &SecretString) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let key = AuthCache::key(token);
        let mut entries = self.lock();
        match entries.get(&key) {
            Some((company, installation, until)) if *until > Instant::now() => Some(Caller {
                token: token.clone(),
                company: *company,
                installation: installation.clone(),
            }),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&self, caller: &Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, _, until)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            AuthCache::key(&caller.token),
            (caller.company, caller.installation.clone(), now + self.ttl),
        );
    }
}

/// The bearer token of a request: `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(parts: &Parts) -> Result<SecretString, ApiError> {
    const MISSING: &str =
        "missing or malformed Authorization header: expected `Bearer <marketplace token>`";
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized(MISSING))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized(MISSING))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized(MISSING))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::unauthorized(MISSING));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if let Some(caller) = state.auth.get(&token) {
            return Ok(Authenticated(caller));
        }
        let caller = state.service.caller(token).await.map_err(ApiError::from)?;
        state.auth.put(&caller);
        Ok(Authenticated(caller))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parts(header: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(h) = header {
            b = b.header(AUTHORIZATION, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_well_formed_bearer_headers_pass() {
        assert!(bearer(&parts(Some("Bearer abc"))).is_ok());
        assert!(bearer(&parts(Some("bearer abc"))).is_ok());
        for bad in [
            None,
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearer "),
            Some("abc"),
            Some("Bearer a b"),
        ] {
            let e = bearer(&parts(bad)).unwrap_err();
            assert_eq!(e.code, "unauthorized");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_after_the_ttl() {
        let cache = AuthCache::new(Duration::from_secs(30));
        let caller = Caller {
            token: SecretString::from("t".to_owned()),
            company: CompanyId(1),
            installation: InstallationId("2".into()),
        };
        cache.put(&caller);
        assert!(cache.get(&caller.token).is_some());
        assert!(cache.get(&SecretString::from("other".to_owned())).is_none());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(cache.get(&caller.token).is_none());
    }
}
