//! Audience calls: lookups by id and creation of customer-file audiences.

use std::collections::HashMap;

use facebook_connector_core::domain::{AdAccountId, Audience, AudienceId};
use reqwest::Method;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use super::transport::{Auth, Call};
use super::wire::{AudienceDetails, AudienceNode, Created};
use super::{AUDIENCE_FIELDS, GraphClient, MAX_DESCRIPTION_CHARS, MAX_IDS_PER_LOOKUP};
use crate::error::GraphError;

/// 100/33 ("object does not exist or cannot be loaded") and 803 ("unknown alias").
fn is_missing_object(err: &GraphError) -> bool {
    matches!(
        (err.code(), err.subcode()),
        (Some(100), Some(33)) | (Some(803), _)
    )
}

impl GraphClient {
    /// `GET /{id}?fields=…` as the user; `None` when the object does not exist or the token
    /// cannot see it.
    pub(super) async fn node_if_exists<T: DeserializeOwned>(
        &self,
        what: &'static str,
        token: &SecretString,
        id: &str,
        fields: &'static str,
    ) -> Result<Option<T>, GraphError> {
        let call = Call::new(what, Method::GET, self.endpoint(id)?, Auth::User(token))
            .param("fields", fields);
        match self.fetch::<T>(&call).await {
            Ok(node) => Ok(Some(node)),
            Err(err) if is_missing_object(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The audiences among `ids` that exist (`GET /?ids=…`, 50 ids per call). When Facebook
    /// refuses a lookup because an id is unknown, the ids are looked up one by one.
    pub async fn audiences(
        &self,
        token: &SecretString,
        ids: &[AudienceId],
    ) -> Result<Vec<AudienceDetails>, GraphError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_LOOKUP) {
            let joined = chunk
                .iter()
                .map(AudienceId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let call = Call::new(
                "audiences",
                Method::GET,
                self.endpoint("")?,
                Auth::User(token),
            )
            .param("ids", joined)
            .param("fields", AUDIENCE_FIELDS);
            match self.fetch::<HashMap<String, AudienceNode>>(&call).await {
                Ok(found) => {
                    for id in chunk {
                        if let Some(node) = found.get(id.as_str()) {
                            out.extend(node.clone().into_domain());
                        }
                    }
                }
                Err(err) if is_missing_object(&err) => {
                    for id in chunk {
                        let node: Option<AudienceNode> = self
                            .node_if_exists("audience", token, id.as_str(), AUDIENCE_FIELDS)
                            .await?;
                        out.extend(node.and_then(AudienceNode::into_domain));
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// `POST /act_{id}/customaudiences`: a customer-file audience (description cut to 100
    /// characters). Not retried after errors that may mean it was created; its usage and
    /// throttles count for the ad account.
    pub async fn create_audience(
        &self,
        token: &SecretString,
        ad_account: &AdAccountId,
        name: &str,
        description: &str,
    ) -> Result<Audience, GraphError> {
        let description: String = description.chars().take(MAX_DESCRIPTION_CHARS).collect();
        let mut call = Call::new(
            "create_audience",
            Method::POST,
            self.endpoint(&format!("{}/customaudiences", ad_account.as_str()))?,
            Auth::User(token),
        )
        .for_ad_account(ad_account)
        .param("name", name)
        .param("description", description)
        .param("subtype", "CUSTOM")
        .param("customer_file_source", "PARTNER_PROVIDED_ONLY");
        call.idempotent = false;
        let created: Created = self.fetch(&call).await?;
        let id = AudienceId::parse(&created.id).map_err(|_| GraphError::Decode {
            what: "create_audience",
            source: None,
        })?;
        Ok(Audience {
            id,
            name: name.to_owned(),
        })
    }
}
