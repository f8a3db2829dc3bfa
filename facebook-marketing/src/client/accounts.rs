//! Token and account calls: `debug_token`, `/me`, the long-lived exchange, ad accounts, and
//! batched permission revocation.

use std::sync::Mutex;

use connector_resilience::Retry;
use facebook_connector_core::domain::{
    AdAccount, AdAccountId, FacebookUser, FacebookUserId, LongLivedToken, TokenInfo,
};
use reqwest::Method;
use secrecy::SecretString;
use tracing::{debug, warn};

use super::transport::{Auth, Call};
use super::wire::{
    AdAccountNode, AdAccountsPage, BatchAnswer, DebugToken, Exchange, Me, unix_time,
};
use super::{AD_ACCOUNT_FIELDS, AD_ACCOUNTS_PAGE_SIZE, GraphClient, MAX_BATCH_REQUESTS};
use crate::error::GraphError;

/// Pages followed at most (a guard against a paging loop).
const MAX_PAGES: usize = 1_000;

/// One user's revocation result.
type Revocation = Result<(), GraphError>;

/// A round of batched revocations in which some entries failed temporarily.
#[derive(Debug, thiserror::Error)]
enum Round {
    #[error("{0} revocations failed temporarily")]
    Pending(usize),
    #[error(transparent)]
    Call(GraphError),
}

impl GraphClient {
    /// `GET /debug_token` with the app token. A token of another app is reported invalid.
    /// Expiry times of 0 (never) and absent ones are `None`.
    pub async fn debug_token(&self, token: &SecretString) -> Result<TokenInfo, GraphError> {
        let call = Call::new(
            "debug_token",
            Method::GET,
            self.endpoint("debug_token")?,
            Auth::App,
        )
        .secret("input_token", token);
        let d = self.fetch::<DebugToken>(&call).await?.data;
        let same_app = d
            .app_id
            .as_deref()
            .is_none_or(|a| a == self.inner.cfg.app_id);
        if !same_app {
            warn!("debug_token: the token belongs to another app");
        }
        Ok(TokenInfo {
            is_valid: d.is_valid && same_app,
            scopes: d.scopes,
            issued_at: unix_time(d.issued_at),
            expires_at: unix_time(d.expires_at),
            data_access_expires_at: unix_time(d.data_access_expires_at),
            user_id: d.user_id.and_then(|u| FacebookUserId::new(u).ok()),
        })
    }

    /// `GET /me?fields=id,name`.
    pub async fn me(&self, token: &SecretString) -> Result<FacebookUser, GraphError> {
        let call = Call::new("me", Method::GET, self.endpoint("me")?, Auth::User(token))
            .param("fields", "id,name");
        let me: Me = self.fetch(&call).await?;
        let id = FacebookUserId::new(me.id).map_err(|_| GraphError::Decode {
            what: "me",
            source: None,
        })?;
        Ok(FacebookUser { id, name: me.name })
    }

    /// `GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived token.
    pub async fn exchange_long_lived(
        &self,
        token: &SecretString,
    ) -> Result<LongLivedToken, GraphError> {
        let app_secret = &self.inner.cfg.app_secret;
        let call = Call::new(
            "exchange_token",
            Method::GET,
            self.endpoint("oauth/access_token")?,
            Auth::Anonymous,
        )
        .param("grant_type", "fb_exchange_token")
        .param("client_id", self.inner.cfg.app_id.clone())
        .secret("client_secret", app_secret)
        .secret("fb_exchange_token", token);
        let body = self.execute(&call).await?;
        // The parser's error is dropped: it could quote the response, which holds a token.
        let ex: Exchange = serde_json::from_slice(&body).map_err(|_| GraphError::Decode {
            what: "exchange_token",
            source: None,
        })?;
        Ok(LongLivedToken {
            token: ex.access_token,
            expires_in: ex.expires_in,
        })
    }

    /// Every ad account of the token's user (`GET /me/adaccounts`, following `paging.next`
    /// only on the configured host).
    pub async fn ad_accounts(&self, token: &SecretString) -> Result<Vec<AdAccount>, GraphError> {
        let mut call = Call::new(
            "ad_accounts",
            Method::GET,
            self.endpoint("me/adaccounts")?,
            Auth::User(token),
        )
        .param("fields", AD_ACCOUNT_FIELDS)
        .param("limit", AD_ACCOUNTS_PAGE_SIZE.to_string());
        let mut out = Vec::new();
        for page_no in 1..=MAX_PAGES {
            let page: AdAccountsPage = self.fetch(&call).await?;
            out.extend(page.data.into_iter().filter_map(AdAccountNode::into_domain));
            let Some(next) = page.paging.and_then(|p| p.next) else {
                return Ok(out);
            };
            debug!(page = page_no, "following ad accounts paging link");
            call = self.follow(call, &next)?;
        }
        Err(GraphError::Decode {
            what: "ad_accounts (too many pages)",
            source: None,
        })
    }

    /// One ad account; `None` when it does not exist or the token cannot see it.
    pub async fn ad_account(
        &self,
        token: &SecretString,
        id: &AdAccountId,
    ) -> Result<Option<AdAccount>, GraphError> {
        let node: Option<AdAccountNode> = self
            .node_if_exists("ad_account", token, id.as_str(), AD_ACCOUNT_FIELDS)
            .await?;
        Ok(node.and_then(AdAccountNode::into_domain))
    }

    /// Revokes the app's permissions for each user with batch requests of at most 50
    /// `DELETE /{user_id}/permissions` (app token). One result per user, in order. Users whose
    /// entry failed temporarily are sent again in later rounds, under the retry policy (its
    /// attempts are rounds; each batch call is itself retried like any call).
    pub async fn revoke_permissions(
        &self,
        users: &[FacebookUserId],
    ) -> Result<Vec<(FacebookUserId, Revocation)>, GraphError> {
        let mut results: Vec<Option<Revocation>> = users.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = Vec::new();
        for (i, user) in users.iter().enumerate() {
            if user.as_str().bytes().all(|b| b.is_ascii_digit()) {
                pending.push(i);
            } else {
                results[i] = Some(Err(GraphError::InvalidRequest {
                    reason: "facebook user ids are digits",
                }));
            }
        }
        let state = Mutex::new((results, pending));
        let round = || async {
            let todo = lock(&state).1.clone();
            let mut answered = Vec::with_capacity(todo.len());
            for chunk in todo.chunks(MAX_BATCH_REQUESTS) {
                let answers = self.revoke_batch(users, chunk).await.map_err(Round::Call)?;
                answered.extend(chunk.iter().copied().zip(answers));
            }
            let mut guard = lock(&state);
            let (results, pending) = &mut *guard;
            pending.clear();
            for (i, outcome) in answered {
                if matches!(&outcome, Err(err) if err.class().is_retryable()) {
                    pending.push(i);
                }
                results[i] = Some(outcome);
            }
            match pending.len() {
                0 => Ok(()),
                n => Err(Round::Pending(n)),
            }
        };
        let outcome = self
            .inner
            .cfg
            .retry
            .run(
                "revoke_permissions",
                |r: &Round| match r {
                    Round::Pending(_) => Retry::Backoff,
                    Round::Call(_) => Retry::Never,
                },
                |_| round(),
            )
            .await;
        if let Err(gave_up) = outcome
            && let Round::Call(err) = gave_up.error
        {
            return Err(err);
        }
        let (results, _) = state.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(users
            .iter()
            .cloned()
            .zip(results)
            .map(|(u, r)| (u, r.unwrap_or(Err(GraphError::Timeout))))
            .collect())
    }

    /// One batch request revoking the permissions of `users[i]` for each `i` of `chunk`.
    async fn revoke_batch(
        &self,
        users: &[FacebookUserId],
        chunk: &[usize],
    ) -> Result<Vec<Revocation>, GraphError> {
        let batch: Vec<serde_json::Value> = chunk
            .iter()
            .map(|&i| {
                serde_json::json!({
                    "method": "DELETE",
                    "relative_url": format!("{}/permissions", users[i].as_str()),
                })
            })
            .collect();
        let call = Call::new(
            "revoke_permissions",
            Method::POST,
            self.endpoint("")?,
            Auth::App,
        )
        .param("batch", serde_json::Value::Array(batch).to_string())
        .param("include_headers", "false");
        let answers: Vec<Option<BatchAnswer>> = self.fetch(&call).await?;
        if answers.len() != chunk.len() {
            return Err(GraphError::BatchShape {
                expected: chunk.len(),
                got: answers.len(),
            });
        }
        Ok(answers
            .into_iter()
            .map(|answer| match answer {
                // a null entry: Facebook did not get to it (timeout)
                None => Err(GraphError::Timeout),
                Some(a) if (200..300).contains(&a.code) => Ok(()),
                Some(a) => Err(self.batch_error(a.code, a.body.as_deref())),
            })
            .collect())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
