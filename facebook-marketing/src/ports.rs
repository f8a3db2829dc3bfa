//! The core's ports implemented by [`GraphClient`].

use async_trait::async_trait;
use facebook_connector_core::domain::Received;
use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, FacebookUser, FacebookUserId, LongLivedToken,
    TokenInfo,
};
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{
    AudienceSink, FacebookAccounts, UploadOutcome, UploadSession, UploadTarget,
};
use facebook_connector_core::{Error, Result};
use secrecy::SecretString;

use crate::client::GraphClient;
use crate::error::{ErrorClass, GraphError};

/// For app-token calls: an invalid token there means the app's credentials, not a profile's
/// token, so it is not reported as `InvalidToken`.
fn app_call_error(err: GraphError) -> Error {
    if err.class() == ErrorClass::InvalidToken {
        return Error::Rejected {
            reason: "facebook rejected the app credentials".into(),
            source: Some(Box::new(err)),
        };
    }
    err.into_core()
}

#[async_trait]
impl AudienceSink for GraphClient {
    async fn find_audiences(
        &self,
        token: &SecretString,
        ids: &[AudienceId],
    ) -> Result<Vec<Audience>> {
        self.audiences(token, ids)
            .await
            .map(|found| found.into_iter().map(Audience::from).collect())
            .map_err(GraphError::into_core)
    }

    async fn create_audience(
        &self,
        token: &SecretString,
        ad_account: &AdAccountId,
        name: &str,
        description: &str,
    ) -> Result<Audience> {
        GraphClient::create_audience(self, token, ad_account, name, description)
            .await
            .map_err(GraphError::into_core)
    }

    async fn add_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<UploadOutcome> {
        match GraphClient::add_members(self, token, target, payload, session).await {
            Ok(outcome) => Ok(outcome),
            // 803 that outlived the client's retries: the audience may still be propagating.
            Err(err) if err.class() == ErrorClass::UnknownAlias => Err(Error::Transient {
                retry_after: None,
                source: Box::new(err),
            }),
            Err(err) => Err(err.into_core()),
        }
    }

    async fn remove_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
    ) -> Result<Received> {
        GraphClient::remove_members(self, token, target, payload)
            .await
            .map_err(GraphError::into_core)
    }
}

#[async_trait]
impl FacebookAccounts for GraphClient {
    async fn token_info(&self, token: &SecretString) -> Result<TokenInfo> {
        self.debug_token(token).await.map_err(app_call_error)
    }

    async fn me(&self, token: &SecretString) -> Result<FacebookUser> {
        GraphClient::me(self, token)
            .await
            .map_err(GraphError::into_core)
    }

    async fn exchange_long_lived(&self, token: &SecretString) -> Result<LongLivedToken> {
        GraphClient::exchange_long_lived(self, token)
            .await
            .map_err(GraphError::into_core)
    }

    async fn ad_accounts(&self, token: &SecretString) -> Result<Vec<AdAccount>> {
        GraphClient::ad_accounts(self, token)
            .await
            .map_err(GraphError::into_core)
    }

    async fn ad_account(
        &self,
        token: &SecretString,
        id: &AdAccountId,
    ) -> Result<Option<AdAccount>> {
        GraphClient::ad_account(self, token, id)
            .await
            .map_err(GraphError::into_core)
    }

    async fn revoke_permissions(
        &self,
        users: &[FacebookUserId],
    ) -> Result<Vec<(FacebookUserId, Result<(), Error>)>> {
        let results = GraphClient::revoke_permissions(self, users)
            .await
            .map_err(app_call_error)?;
        Ok(results
            .into_iter()
            .map(|(user, r)| (user, r.map_err(GraphError::into_core)))
            .collect())
    }
}
