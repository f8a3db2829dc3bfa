//! Facebook ports: the audience sink the engine uploads to, and the account calls the HTTP API
//! makes while creating and checking profiles.

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, FacebookUser, FacebookUserId, LongLivedToken,
    Received, TokenInfo,
};
use crate::error::{Error, Result};
use crate::payload::Payload;

/// Facebook's upload session: one per delivered file so Facebook counts the file as one
/// upload. Retrying a batch with the same session and `batch_seq` is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadSession {
    /// Positive, unique per ad account, stable across retries of the file.
    pub session_id: u64,
    /// 1, 2, … within the session.
    pub batch_seq: u32,
    /// Whether this is the file's last batch.
    pub last_batch: bool,
    /// Total members expected in the session, when known.
    pub estimated_num_total: Option<u64>,
}

/// What Facebook answered to one uploaded batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Accepted. Facebook reports the session's **running totals** (everything received in
    /// the session so far, not this batch alone); the engine turns them into per-batch and
    /// per-file figures against its durable checkpoint ([`Checkpoint::absorb_totals`]).
    ///
    /// [`Checkpoint::absorb_totals`]: crate::domain::Checkpoint::absorb_totals
    Accepted(Received),
    /// Error 2650/1870159: the session already finished. For a re-sent last batch this means
    /// the earlier send was processed (Facebook holds every row): the batch counts as
    /// acknowledged.
    SessionFinished,
    /// Error 2650/1870158: the session timed out (its first batch is more than 90 minutes
    /// old); the rest of the file must go into a new session.
    SessionExpired,
}

/// Where one upload goes: the audience, and the ad account it belongs to (Facebook's
/// custom-audience quota and throttling are per ad account).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadTarget {
    /// The ad account owning the audience.
    pub ad_account: AdAccountId,
    /// The audience.
    pub audience: AudienceId,
}

/// Where audience members go.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait AudienceSink: Send + Sync {
    /// The audiences among `ids` that still exist (missing ones are simply absent).
    async fn find_audiences(
        &self,
        token: &SecretString,
        ids: &[AudienceId],
    ) -> Result<Vec<Audience>>;

    /// Creates a customer-file Custom Audience in the ad account.
    async fn create_audience(
        &self,
        token: &SecretString,
        ad_account: &AdAccountId,
        name: &str,
        description: &str,
    ) -> Result<Audience>;

    /// Adds one batch of members within an upload session. Sending the same `batch_seq` of
    /// the same session again is safe (Facebook does not add its rows twice). Errors:
    /// [`Error::InvalidToken`](crate::Error::InvalidToken),
    /// [`Error::Throttled`](crate::Error::Throttled) (with Facebook's wait estimate) for rate
    /// limits and "audience update in progress", [`Error::Transient`](crate::Error::Transient)
    /// once the client's own short retries are used up, and permanent refusals.
    async fn add_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<UploadOutcome>;

    /// Removes members (outside any session); returns this request's figures.
    async fn remove_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
    ) -> Result<Received>;
}

/// Token and ad account calls.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait FacebookAccounts: Send + Sync {
    /// What Facebook says about a user token (`debug_token` with the app token).
    async fn token_info(&self, token: &SecretString) -> Result<TokenInfo>;

    /// The user behind a token.
    async fn me(&self, token: &SecretString) -> Result<FacebookUser>;

    /// Exchanges a short-lived user token for a long-lived one.
    async fn exchange_long_lived(&self, token: &SecretString) -> Result<LongLivedToken>;

    /// Every ad account the token can use (all pages).
    async fn ad_accounts(&self, token: &SecretString) -> Result<Vec<AdAccount>>;

    /// One ad account; `None` when the token cannot see it.
    async fn ad_account(&self, token: &SecretString, id: &AdAccountId)
    -> Result<Option<AdAccount>>;

    /// Revokes the app's permissions for each user (batched), one result per user in order.
    async fn revoke_permissions(
        &self,
        users: &[FacebookUserId],
    ) -> Result<Vec<(FacebookUserId, Result<(), Error>)>>;
}
