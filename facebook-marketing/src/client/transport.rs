//! One call: the limiter's slot, sending with the right credentials, decoding Graph errors
//! (scrubbed of the call's secrets), and the shared retry policy around it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use connector_resilience::{Attempt, Retry, contains_secret};
use facebook_connector_core::domain::AdAccountId;
use facebook_connector_core::form;
use facebook_connector_core::payload::{Encoding, Payload, PayloadText};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use url::Url;

use super::{GraphClient, appsecret_proof};
use crate::error::{ApiError, ErrorClass, GraphError, GraphErrorBody};
use crate::usage::{Scope, parse_usage};

/// The shortest timeout of one attempt, even when the call's budget is almost spent.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Who a call authenticates as.
#[derive(Clone, Copy)]
pub(super) enum Auth<'a> {
    /// A user token, with `appsecret_proof`.
    User(&'a SecretString),
    /// The app token `{app_id}|{app_secret}`.
    App,
    /// No `access_token` (the token exchange authenticates with the client secret).
    Anonymous,
}

/// One call, re-sendable for retries.
pub(super) struct Call<'a> {
    pub(super) what: &'static str,
    pub(super) method: Method,
    pub(super) url: Url,
    /// Borrowed where they can be: an upload's payload is ~10 MB and is not copied.
    pub(super) params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// A large parameter sent last and form-encoded while the body is written (an upload's
    /// payload), so that no encoded copy of it is held per request.
    pub(super) streamed: Option<(&'static str, Payload)>,
    pub(super) secret_params: Vec<(&'static str, &'a SecretString)>,
    pub(super) auth: Auth<'a>,
    /// The ad account whose custom-audience quota the call spends (audience creation and
    /// uploads): its usage and throttles are tracked for that ad account.
    pub(super) ad_account: Option<&'a AdAccountId>,
    /// Retry 803 (an id that does not exist yet).
    pub(super) retry_unknown_alias: bool,
    /// Whether sending twice is harmless; otherwise only errors that prove the request was
    /// not processed (throttling, policy block) are retried.
    pub(super) idempotent: bool,
}

impl<'a> Call<'a> {
    pub(super) fn new(what: &'static str, method: Method, url: Url, auth: Auth<'a>) -> Self {
        Call {
            what,
            method,
            url,
            params: Vec::new(),
            streamed: None,
            secret_params: Vec::new(),
            auth,
            ad_account: None,
            retry_unknown_alias: false,
            idempotent: true,
        }
    }

    pub(super) fn param(mut self, key: &'static str, value: impl Into<Cow<'a, str>>) -> Self {
        self.params.push((Cow::Borrowed(key), value.into()));
        self
    }

    /// Sets the large parameter that is streamed last (see [`Call::streamed`]).
    pub(super) fn streamed(mut self, key: &'static str, value: Payload) -> Self {
        self.streamed = Some((key, value));
        self
    }

    pub(super) fn secret(mut self, key: &'static str, value: &'a SecretString) -> Self {
        self.secret_params.push((key, value));
        self
    }

    pub(super) fn for_ad_account(mut self, ad_account: &'a AdAccountId) -> Self {
        self.ad_account = Some(ad_account);
        self
    }

    fn account_key(&self) -> Option<&'a str> {
        self.ad_account.map(AdAccountId::as_str)
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphErrorBody,
}

impl GraphClient {
    /// Every secret a call carries (for scrubbing what Facebook echoes back).
    fn call_secrets<'c>(&'c self, call: &'c Call<'_>) -> Vec<&'c str> {
        let mut secrets: Vec<&str> = call
            .secret_params
            .iter()
            .map(|(_, v)| v.expose_secret())
            .collect();
        secrets.push(self.inner.cfg.app_secret.expose_secret());
        match call.auth {
            Auth::User(token) => secrets.push(token.expose_secret()),
            Auth::App => secrets.push(self.inner.app_token.expose_secret()),
            Auth::Anonymous => {}
        }
        secrets
    }

    async fn send_once(&self, call: &Call<'_>, timeout: Duration) -> Result<Vec<u8>, GraphError> {
        let inner = &self.inner;
        let mut pairs: Vec<(&str, &str)> = call
            .params
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        for (k, v) in &call.secret_params {
            pairs.push((k, v.expose_secret()));
        }
        let proof;
        match call.auth {
            Auth::User(token) => {
                proof = appsecret_proof(&inner.cfg.app_secret, token);
                pairs.push(("access_token", token.expose_secret()));
                pairs.push(("appsecret_proof", &proof));
            }
            Auth::App => pairs.push(("access_token", inner.app_token.expose_secret())),
            Auth::Anonymous => {}
        }
        let mut request = inner
            .http
            .request(call.method.clone(), call.url.clone())
            .timeout(timeout);
        let streamed_json;
        request = if call.method == Method::GET {
            if let Some((key, value)) = &call.streamed {
                streamed_json = value.to_json();
                pairs.push((key, streamed_json.as_str()));
            }
            request.query(&pairs)
        } else {
            let body = match &call.streamed {
                None => reqwest::Body::from(form_body(&pairs)),
                Some((key, value)) => {
                    reqwest::Body::wrap(FormBody::new(&pairs, key, value.text(Encoding::Form)))
                }
            };
            request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                count_error_answer(ErrorClass::Transient);
                return Err(GraphError::transport(e));
            }
        };
        let status = response.status();
        let usage = parse_usage(response.headers());
        let trace_header = response
            .headers()
            .get("x-fb-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(GraphError::transport)?;
        debug!(
            call = call.what,
            status = status.as_u16(),
            usage_percent = usage.max_percent(),
            "graph api answered"
        );
        let error = if status.is_success() {
            None
        } else {
            Some(match serde_json::from_slice::<Envelope>(&body) {
                Ok(mut env) => {
                    if env.error.fbtrace_id.is_none() {
                        env.error.fbtrace_id = trace_header;
                    }
                    GraphError::from_body(
                        status.as_u16(),
                        env.error,
                        usage.regain_access,
                        &self.call_secrets(call),
                    )
                }
                Err(_) => GraphError::Http {
                    status: status.as_u16(),
                    fbtrace_id: trace_header,
                },
            })
        };
        if let Some(err) = &error {
            count_error_answer(err.class());
        }
        // A throttle answer's usage figures (100%) add no pacing: its estimate is the wait.
        if !error.as_ref().is_some_and(|e| e.class().is_throttle()) {
            inner.limiter.observe(call.account_key(), &usage);
        }
        match error {
            None => Ok(body.to_vec()),
            Some(err) => Err(err),
        }
    }

    /// The scope a throttle of `err` holds back, if any: app-level throttles (4, 341) the
    /// app, the others the call's ad account (calls without one: none, the retry waits).
    fn throttle_scope<'c>(&self, call: &Call<'c>, err: &GraphError) -> Option<Scope<'c>> {
        match (err.class(), err.code()) {
            (ErrorClass::Throttled, Some(4 | 341)) => Some(Scope::App),
            (ErrorClass::Throttled | ErrorClass::PolicyBlock, _) => {
                call.account_key().map(Scope::AdAccount)
            }
            _ => None,
        }
    }

    /// Facebook's wait for a throttle-like error with a usable estimate (a zero estimate is
    /// none: retry soon).
    fn throttle_wait(&self, err: &GraphError) -> Option<Duration> {
        match err.class() {
            ErrorClass::Throttled => err.retry_after().filter(|w| !w.is_zero()),
            ErrorClass::PolicyBlock => Some(self.inner.cfg.policy_block_wait),
            _ => None,
        }
    }

    /// How `err` is retried inside the client.
    fn retry_class(&self, call: &Call<'_>, err: &GraphError) -> Retry {
        if matches!(err, GraphError::Deferred { .. }) {
            // the limiter's slot is beyond the budget: nothing to retry here
            return Retry::Never;
        }
        match err.class() {
            ErrorClass::Throttled | ErrorClass::PolicyBlock => match self.throttle_wait(err) {
                // the limiter now blocks the scope: the next attempt's slot is the wait, and
                // concurrent callers of the scope take consecutive slots
                Some(_) if self.throttle_scope(call, err).is_some() => Retry::After(Duration::ZERO),
                Some(wait) => Retry::After(wait),
                None => Retry::Backoff,
            },
            ErrorClass::UpdateInProgress => Retry::Backoff,
            ErrorClass::Transient if call.idempotent => Retry::Backoff,
            ErrorClass::UnknownAlias if call.retry_unknown_alias => Retry::Backoff,
            _ => Retry::Never,
        }
    }

    /// One attempt: the limiter's slot (or [`GraphError::Deferred`] when it is beyond the
    /// budget), the request, and the throttle it may report.
    async fn attempt(&self, call: &Call<'_>, attempt: Attempt) -> Result<Vec<u8>, GraphError> {
        let pause = self
            .inner
            .limiter
            .reserve(call.account_key(), attempt.remaining)
            .map_err(|wait| {
                warn!(
                    call = call.what,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "graph api usage limit reached, not calling now"
                );
                GraphError::Deferred { wait }
            })?;
        if !pause.is_zero() {
            debug!(
                call = call.what,
                wait_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "waiting for the limiter's slot"
            );
            tokio::time::sleep(pause).await;
        }
        let left = Attempt {
            remaining: attempt.remaining.saturating_sub(pause),
            ..attempt
        };
        let timeout = left.timeout(self.inner.cfg.timeout, MIN_ATTEMPT_TIMEOUT);
        if attempt.number > 1 && call.what == "add_members" {
            // the same batch sent again (operations.md: re-sends of a batch)
            metrics::counter!("facebook_connector_batches_total", "outcome" => "retried")
                .increment(1);
        }
        let result = self.send_once(call, timeout).await;
        if let Err(err) = &result
            && let (Some(scope), Some(wait)) =
                (self.throttle_scope(call, err), self.throttle_wait(err))
        {
            self.inner.limiter.block_for(scope, wait);
        }
        result
    }

    /// Sends `call` under the limiter and the retry policy. A wait that does not fit in the
    /// policy's budget is not taken: the error carries it as [`GraphError::retry_after`].
    pub(super) async fn execute(&self, call: &Call<'_>) -> Result<Vec<u8>, GraphError> {
        // The last throttle Facebook answered: when the retry after it finds its scope's slot
        // beyond the budget, that throttle (code, trace id, texts) is the error to report.
        let last_throttle: Mutex<Option<Box<ApiError>>> = Mutex::new(None);
        let outcome = self
            .inner
            .cfg
            .retry
            .run(
                call.what,
                |err| self.retry_class(call, err),
                |attempt| {
                    let last_throttle = &last_throttle;
                    async move {
                        let result = self.attempt(call, attempt).await;
                        if let Err(GraphError::Api(api)) = &result
                            && result.as_ref().is_err_and(|e| e.class().is_throttle())
                        {
                            *lock(last_throttle) = Some(api.clone());
                        }
                        result
                    }
                },
            )
            .await;
        outcome.map_err(|gave_up| {
            let mut error = gave_up.error;
            let mut wait = gave_up.wait;
            if let GraphError::Deferred { wait: slot } = &error
                && let Some(api) = lock(&last_throttle).take()
            {
                wait = Some(*slot);
                error = GraphError::Api(api);
            }
            // the policy's next wait, or Facebook's own when longer (a throttle that held the
            // scope back retried "at once": the limiter's block is the real wait)
            let wait = wait.max(self.throttle_wait(&error));
            let err = error.with_retry_wait(wait);
            debug!(
                call = call.what,
                attempts = gave_up.attempts,
                code = err.code(),
                subcode = err.subcode(),
                fbtrace_id = err.fbtrace_id(),
                class = ?err.class(),
                "graph api call failed"
            );
            err
        })
    }

    /// [`GraphClient::execute`] and JSON decoding of the answer.
    pub(super) async fn fetch<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<T, GraphError> {
        let body = self.execute(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            // the parser's message can quote the response (paging links carry the token)
            let quotes_secret = contains_secret(&e.to_string(), &self.call_secrets(call));
            GraphError::Decode {
                what: call.what,
                source: (!quotes_secret).then_some(e),
            }
        })
    }

    /// A call for a `paging.next` link: same auth, the link's query without its token.
    pub(super) fn follow<'a>(&self, call: Call<'a>, next: &str) -> Result<Call<'a>, GraphError> {
        let url = Url::parse(next).map_err(|_| GraphError::ForeignPagingLink)?;
        let root = &self.inner.root;
        if url.scheme() != root.scheme()
            || url.host_str() != root.host_str()
            || url.port_or_known_default() != root.port_or_known_default()
        {
            return Err(GraphError::ForeignPagingLink);
        }
        let params: Vec<(Cow<'a, str>, Cow<'a, str>)> = url
            .query_pairs()
            .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
            .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
            .collect();
        let mut bare = url;
        bare.set_query(None);
        bare.set_fragment(None);
        Ok(Call {
            url: bare,
            params,
            ..call
        })
    }

    /// Decodes a batch answer's Graph error, scrubbing the app token.
    pub(super) fn batch_error(&self, status: u16, body: Option<&str>) -> GraphError {
        match body.and_then(|b| serde_json::from_str::<Envelope>(b).ok()) {
            Some(env) => GraphError::from_body(
                status,
                env.error,
                None,
                &[self.inner.app_token.expose_secret()],
            ),
            None => GraphError::Http {
                status,
                fbtrace_id: None,
            },
        }
    }
}

/// `facebook_connector_facebook_errors_total{class}` (operations.md): every error answer from
/// Facebook, those retried here included; a call that got no answer counts as transient.
fn count_error_answer(class: ErrorClass) {
    let label = match class {
        ErrorClass::InvalidToken => "invalid_token",
        ErrorClass::Permission => "permission",
        ErrorClass::Transient => "transient",
        ErrorClass::Throttled | ErrorClass::UpdateInProgress => "throttled",
        ErrorClass::PolicyBlock => "policy",
        _ => "bad_request",
    };
    metrics::counter!("facebook_connector_facebook_errors_total", "class" => label).increment(1);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `application/x-www-form-urlencoded` body of `pairs`, as reqwest's `form` would write it.
/// Written here because an upload's body is ~10 MB of JSON that is mostly hex digits: copying
/// runs of safe bytes whole is several times faster than encoding byte by byte (the generic
/// encoder took a third of the worker's CPU in the engine benchmark).
pub(super) fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(len + len / 4);
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        form::encode_into(&mut out, key.as_bytes());
        out.push(b'=');
        form::encode_into(&mut out, value.as_bytes());
    }
    out
}

/// A form body whose last value (a payload) is written chunk by chunk, straight in the form
/// encoding, as the body is sent: what [`form_body`] of every pair would give, without holding
/// the encoded value. Its exact length is known in advance, so it is sent with a
/// `Content-Length`, like a buffered body.
struct FormBody {
    /// The other pairs and `key=`, encoded, until written.
    head: Option<bytes::Bytes>,
    value: PayloadText,
    /// Encoded bytes not yet written.
    remaining: u64,
}

/// Bytes of the streamed value written per chunk of the body.
const STREAM_CHUNK: usize = 256 * 1024;

impl FormBody {
    fn new(pairs: &[(&str, &str)], key: &str, value: PayloadText) -> FormBody {
        let mut head = form_body(pairs);
        if !pairs.is_empty() {
            head.push(b'&');
        }
        form::encode_into(&mut head, key.as_bytes());
        head.push(b'=');
        let remaining = (head.len() + value.len()) as u64;
        FormBody {
            head: Some(head.into()),
            value,
            remaining,
        }
    }
}

impl http_body::Body for FormBody {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        let this = &mut *self;
        let chunk: bytes::Bytes = match this.head.take() {
            Some(head) => head,
            None => match this.value.next_chunk(STREAM_CHUNK) {
                Some(chunk) => chunk.into(),
                None => return Poll::Ready(None),
            },
        };
        this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod form_tests {
    use super::form_body;
    use proptest::prelude::*;

    fn reference(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    #[test]
    fn encodes_a_payload_as_the_url_crate_does() {
        let pairs = [
            (
                "payload",
                r#"{"schema":["EMAIL","MADID"],"data":[["ab12","x y"],["é~*","&=%+"]]}"#,
            ),
            (
                "session",
                r#"{"session_id":1,"batch_seq":2,"last_batch_flag":false}"#,
            ),
            ("access_token", "EAAB/x+y="),
        ];
        assert_eq!(form_body(&pairs), reference(&pairs));
        assert_eq!(form_body(&[]), b"");
    }

    proptest! {
        #[test]
        fn any_pairs_encode_as_the_url_crate_does(
            pairs in proptest::collection::vec((".{0,8}", ".{0,40}"), 0..4)
        ) {
            let pairs: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(form_body(&pairs), reference(&pairs));
        }
    }

    /// The streamed body is the buffered one, chunk after chunk, with its exact length.
    #[tokio::test]
    async fn a_streamed_value_is_sent_as_the_buffered_body() {
        use facebook_connector_core::member::{AudienceMember, MemberKey};
        use facebook_connector_core::payload::{Encoding, Payload, PayloadBuilder};
        use http_body::Body as _;
        use http_body_util::BodyExt as _;
        let mut builder = PayloadBuilder::new(10_000).unwrap();
        for i in 0..9_999 {
            let mut member = AudienceMember::new();
            member.set(MemberKey::EMAIL, &format!("{i:064x}")).unwrap();
            if i % 3 == 0 {
                member
                    .set(MemberKey::MADID, &format!("id é&=%+ {i}"))
                    .unwrap();
            }
            assert!(builder.push(&member).is_none());
        }
        let built = builder.finish().unwrap();
        let given = Payload::from_rows(vec![MemberKey::MADID], &[vec!["é &=%+".into()]]);
        for (payload, pairs) in [
            (&built, vec![]),
            (
                &given,
                vec![("session", "{\"a\":1}"), ("access_token", "t/+=")],
            ),
        ] {
            let body = super::FormBody::new(&pairs, "payload", payload.text(Encoding::Form));
            let announced = body.size_hint().exact();
            let collected = body.collect().await.unwrap().to_bytes();
            let json = payload.to_json();
            let mut all = pairs.clone();
            all.push(("payload", &json));
            assert_eq!(collected, reference(&all));
            assert_eq!(announced, Some(collected.len() as u64));
        }
    }
}
