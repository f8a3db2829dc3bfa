//! Facebook ports: the audience sink the engine uploads to, and the account calls the HTTP API
//! makes while creating and checking profiles.

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, FacebookUser, FacebookUserId, LongLivedToken,
    TokenInfo,
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

/// What Facebook said about one uploaded batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReceipt {
    /// Rows Facebook received.
    pub num_received: u64,
    /// Rows Facebook could not use.
    pub num_invalid_entries: u64,
    /// The session Facebook recorded the batch in.
    pub session_id: Option<u64>,
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

    /// Adds one batch of members.
    async fn add_members(
        &self,
        token: &SecretString,
        audience: &AudienceId,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<BatchReceipt>;

    /// Removes members.
    async fn remove_members(
        &self,
        token: &SecretString,
        audience: &AudienceId,
        payload: &Payload,
    ) -> Result<BatchReceipt>;
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
