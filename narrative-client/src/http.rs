//! The HTTP plumbing shared by every call: URL building, authentication, status checks and
//! retries with backoff.

use std::time::SystemTime;

use connector_resilience::{Retry, RetryPolicy, redacted_url};
use futures::StreamExt;
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::AppAuth;
use crate::config::HttpConfig;
use crate::error::NarrativeError;

/// How a request is authenticated.
#[derive(Clone, Copy)]
pub(crate) enum Credential<'a> {
    /// The app token (refreshed once on a 401).
    App(&'a AppAuth),
    /// The customer's bearer token, as received (a 401 is final).
    Customer(&'a SecretString),
    /// None (presigned download URLs).
    None,
}

/// One logical call, possibly sent several times.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// `METHOD /path`, for errors and logs (never a presigned URL or a query).
    pub(crate) endpoint: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) json: Option<serde_json::Value>,
    /// Whether the call may be repeated after a transient failure.
    pub(crate) idempotent: bool,
    pub(crate) credential: Credential<'a>,
    /// A streamed download: no whole-request timeout (the read timeout still applies).
    pub(crate) streaming: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, url: Url, credential: Credential<'a>) -> Self {
        let endpoint = format!("{method} {}", url.path());
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::HEAD);
        Call {
            method,
            url,
            endpoint,
            query: Vec::new(),
            json: None,
            idempotent,
            credential,
            streaming: false,
        }
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub(crate) fn json(mut self, body: serde_json::Value) -> Self {
        self.json = Some(body);
        self
    }

    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub(crate) fn endpoint(mut self, endpoint: String) -> Self {
        self.endpoint = endpoint;
        self
    }

    pub(crate) fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }
}

/// The reqwest client, the base URL and the timings.
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) config: HttpConfig,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &redacted_url(&self.base))
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(base: Url, config: HttpConfig) -> Result<Self, NarrativeError> {
        let http = connector_resilience::client_builder()
            .map_err(|source| NarrativeError::Tls { source })?
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|source| NarrativeError::Build { source })?;
        Ok(Transport { http, base, config })
    }

    /// The base URL followed by a configured path (split on `/`) and then `segments`, each
    /// percent-encoded as one path segment.
    pub(crate) fn url(&self, path: &str, segments: &[&str]) -> Result<Url, NarrativeError> {
        let mut url = self.base.clone();
        {
            let mut parts = url.path_segments_mut().map_err(|()| NarrativeError::Url {
                what: "the marketplace base url".to_owned(),
                source: url::ParseError::RelativeUrlWithCannotBeABaseBase,
            })?;
            parts.pop_if_empty();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                parts.push(part);
            }
            for segment in segments {
                parts.push(segment);
            }
        }
        url.set_query(None);
        Ok(url)
    }

    /// Sends a call (with retries when it is idempotent) and returns a successful response.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, NarrativeError> {
        retrying(&self.config.retry, call.idempotent, &call.endpoint, || {
            self.attempt(call)
        })
        .await
    }

    /// Sends a call and decodes its JSON body.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<T, NarrativeError> {
        let response = self.send(call).await?;
        decode_json(response, &call.endpoint).await
    }

    /// Like [`Transport::json`], but a 404 is `None`.
    pub(crate) async fn json_opt<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<Option<T>, NarrativeError> {
        match self.json(call).await {
            Ok(value) => Ok(Some(value)),
            Err(NarrativeError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Response, NarrativeError> {
        match call.credential {
            Credential::None => check(self.dispatch(call, None).await?, &call.endpoint).await,
            Credential::Customer(token) => {
                let response = self.dispatch(call, Some(token)).await?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    return Err(NarrativeError::CustomerUnauthorized {
                        endpoint: call.endpoint.clone(),
                    });
                }
                check(response, &call.endpoint).await
            }
            Credential::App(auth) => {
                let token = auth.token(self).await?;
                let response = self.dispatch(call, Some(&token.secret)).await?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return check(response, &call.endpoint).await;
                }
                tracing::info!(endpoint = %call.endpoint, "app token refused, renewing it once");
                let token = auth.renew_rejected(self, token.generation).await?;
                let response = self.dispatch(call, Some(&token.secret)).await?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    return Err(NarrativeError::AppUnauthorized {
                        endpoint: call.endpoint.clone(),
                    });
                }
                check(response, &call.endpoint).await
            }
        }
    }

    async fn dispatch(
        &self,
        call: &Call<'_>,
        token: Option<&SecretString>,
    ) -> Result<Response, NarrativeError> {
        let mut request = self.http.request(call.method.clone(), call.url.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.json {
            request = request.json(body);
        }
        if let Some(token) = token {
            // reqwest marks the header sensitive
            request = request.bearer_auth(token.expose_secret());
        }
        if !call.streaming {
            request = request.timeout(self.config.request_timeout);
        }
        tracing::debug!(endpoint = %call.endpoint, "marketplace call");
        request
            .send()
            .await
            .map_err(|e| request_error(&call.endpoint, e))
    }
}

/// A transport error without its URL (a presigned URL carries a signature).
pub(crate) fn request_error(endpoint: &str, error: reqwest::Error) -> NarrativeError {
    NarrativeError::Request {
        endpoint: endpoint.to_owned(),
        timeout: error.is_timeout(),
        source: error.without_url(),
    }
}

/// Passes a successful response through; turns anything else into [`NarrativeError::Status`]
/// with the marketplace's `error`/`error_description` fields and `Retry-After`.
pub(crate) async fn check(response: Response, endpoint: &str) -> Result<Response, NarrativeError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = connector_resilience::retry_after(response.headers(), SystemTime::now());
    let body = read_capped(response, 16 * 1024).await;
    let (error, description) = error_fields(&body);
    Err(NarrativeError::Status {
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
        error,
        description,
        retry_after,
    })
}

/// The start of a body (error bodies are small; never read an unbounded one).
pub(crate) async fn read_capped(response: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

/// `error` and `error_description` (or `message`) of a JSON error body, cut to a readable size.
pub(crate) fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let field = |names: &[&str]| {
        names.iter().find_map(|name| {
            value
                .get(name)
                .and_then(|v| v.as_str())
                .map(|s| s.chars().take(300).collect::<String>())
        })
    };
    (
        field(&["error", "code"]),
        field(&["error_description", "message", "detail"]),
    )
}

pub(crate) async fn decode_json<T: DeserializeOwned>(
    response: Response,
    endpoint: &str,
) -> Result<T, NarrativeError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| request_error(endpoint, e))?;
    serde_json::from_slice(&bytes).map_err(|source| NarrativeError::Decode {
        endpoint: endpoint.to_owned(),
        source,
    })
}

/// How an error is retried: only idempotent operations, only after transient failures (5xx,
/// 408, 429, timeouts, resets), after the server's `Retry-After` when it sent one.
pub(crate) fn retry_class(error: &NarrativeError, idempotent: bool) -> Retry {
    if !idempotent || !error.is_transient() {
        return Retry::Never;
    }
    error.retry_after().map_or(Retry::Backoff, Retry::After)
}

/// Runs `op` under the retry policy (see [`retry_class`]). A wait that does not fit in the
/// policy's budget is not taken: the error goes back with its `Retry-After`, for the caller's
/// queue.
pub(crate) async fn retrying<T, F, Fut>(
    retry: &RetryPolicy,
    idempotent: bool,
    endpoint: &str,
    mut op: F,
) -> Result<T, NarrativeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NarrativeError>>,
{
    retry
        .run(endpoint, |e| retry_class(e, idempotent), |_| op())
        .await
        .map_err(|gave_up| gave_up.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let transport = Transport::new(
            Url::parse("http://127.0.0.1:9/prefix/").unwrap(),
            HttpConfig::fast(),
        )
        .unwrap();
        let url = transport
            .url(
                "/v1/app/commands/delivery",
                &["7", "download", "a b/c.jsonl"],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/v1/app/commands/delivery/7/download/a%20b%2Fc.jsonl"
        );
    }

    #[test]
    fn error_fields_are_read_from_json_bodies() {
        let (e, d) = error_fields(br#"{"error":"expired","error_description":"too old"}"#);
        assert_eq!(e.as_deref(), Some("expired"));
        assert_eq!(d.as_deref(), Some("too old"));
        assert_eq!(error_fields(b"<html>"), (None, None));
    }

    #[tokio::test]
    async fn only_idempotent_calls_are_retried() {
        let retry = RetryPolicy::fast();
        let transient = || NarrativeError::Status {
            endpoint: "GET /x".into(),
            status: 503,
            error: None,
            description: None,
            retry_after: None,
        };
        let mut calls = 0;
        let result: Result<(), _> = retrying(&retry, true, "GET /x", || {
            calls += 1;
            std::future::ready(Err(transient()))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, retry.max_attempts);

        let mut calls = 0;
        let _ = retrying::<(), _, _>(&retry, false, "POST /x", || {
            calls += 1;
            std::future::ready(Err(transient()))
        })
        .await;
        assert_eq!(calls, 1);
    }
}
