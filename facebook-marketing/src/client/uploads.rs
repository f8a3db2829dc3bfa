//! Member uploads: `POST /{audience_id}/users` within a session, `DELETE` for removals.

use facebook_connector_core::domain::Received;
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{UploadOutcome, UploadSession, UploadTarget};
use reqwest::Method;
use secrecy::SecretString;
use tracing::debug;

use super::GraphClient;
use super::transport::{Auth, Call};
use super::wire::UploadResponse;
use crate::error::{ErrorClass, GraphError};

/// The `session` parameter of an upload.
pub fn session_json(session: &UploadSession) -> String {
    let mut value = serde_json::json!({
        "session_id": session.session_id,
        "batch_seq": session.batch_seq,
        "last_batch_flag": session.last_batch,
    });
    if let (Some(total), Some(map)) = (session.estimated_num_total, value.as_object_mut()) {
        map.insert("estimated_num_total".into(), total.into());
    }
    value.to_string()
}

impl GraphClient {
    /// `POST /{audience_id}/users` with `payload` and `session`. Safe to retry: Facebook
    /// counts a repeated `batch_seq` of a session once. Retried inside the client: an 803
    /// (audience not propagated yet), "audience update in progress" (2650/1870145),
    /// throttles and transient failures, within the retry budget; the ad account's usage and
    /// throttles hold back the ad account's other uploads (see [`crate::usage`]).
    ///
    /// Facebook's answer is returned as reported: `num_received` / `num_invalid_entries` are
    /// the **session's running totals** (the `CustomAudienceSession` node documents them as
    /// "entries received in the current session"), which the engine turns into per-batch
    /// figures against its durable checkpoint. 2650/1870159 (the session already finished:
    /// an earlier send of its last batch was processed) is
    /// [`UploadOutcome::SessionFinished`], and 2650/1870158 (timed out) is
    /// [`UploadOutcome::SessionExpired`].
    pub async fn add_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<UploadOutcome, GraphError> {
        if session.session_id == 0 || session.session_id > i64::MAX as u64 {
            return Err(GraphError::InvalidRequest {
                reason: "session_id must be a positive 64-bit integer",
            });
        }
        if session.batch_seq == 0 {
            return Err(GraphError::InvalidRequest {
                reason: "batch_seq starts at 1",
            });
        }
        let mut call = Call::new(
            "add_members",
            Method::POST,
            self.endpoint(&format!("{}/users", target.audience.as_str()))?,
            Auth::User(token),
        )
        .for_ad_account(&target.ad_account)
        .streamed("payload", payload.clone())
        .param("session", session_json(session));
        call.retry_unknown_alias = true;
        let outcome = match self.fetch::<UploadResponse>(&call).await {
            Ok(answer) => UploadOutcome::Accepted(Received {
                received: answer.num_received,
                invalid: answer.num_invalid_entries,
            }),
            Err(err) if err.class() == ErrorClass::SessionFinished => {
                UploadOutcome::SessionFinished
            }
            Err(err) if err.class() == ErrorClass::SessionExpired => UploadOutcome::SessionExpired,
            Err(err) => return Err(err),
        };
        debug!(
            audience_id = %target.audience,
            ad_account_id = %target.ad_account,
            session_id = session.session_id,
            batch_seq = session.batch_seq,
            rows = payload.len(),
            outcome = ?outcome,
            "batch uploaded"
        );
        Ok(outcome)
    }

    /// `DELETE /{audience_id}/users` with `payload` (outside any session): this request's
    /// figures.
    pub async fn remove_members(
        &self,
        token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
    ) -> Result<Received, GraphError> {
        let call = Call::new(
            "remove_members",
            Method::DELETE,
            self.endpoint(&format!("{}/users", target.audience.as_str()))?,
            Auth::User(token),
        )
        .for_ad_account(&target.ad_account)
        .streamed("payload", payload.clone());
        let answer: UploadResponse = self.fetch(&call).await?;
        Ok(Received {
            received: answer.num_received,
            invalid: answer.num_invalid_entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_json_has_the_graph_field_names() {
        let s = UploadSession {
            session_id: 7,
            batch_seq: 2,
            last_batch: true,
            estimated_num_total: Some(15_000),
        };
        let v: serde_json::Value = serde_json::from_str(&session_json(&s)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"session_id": 7, "batch_seq": 2, "last_batch_flag": true, "estimated_num_total": 15000})
        );
        let s = UploadSession {
            estimated_num_total: None,
            ..s
        };
        assert!(!session_json(&s).contains("estimated_num_total"));
    }
}
