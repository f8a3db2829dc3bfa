//! An independent check of the client against wiremock, written without the crate's own fake:
//! every call's request shape (method, path, version, exact parameters, where they travel,
//! token and `appsecret_proof`) is verified on every attempt, and each row of the error table of
//! facebook-api.md is injected into each call, checking the resulting core error variant and
//! the number of attempts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facebook_connector_core::Error;
use facebook_connector_core::domain::{AdAccountId, AudienceId, FacebookUserId, Received};
use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{
    AudienceSink, FacebookAccounts, UploadOutcome, UploadSession, UploadTarget,
};
use facebook_marketing::{GraphClient, GraphConfig, LimiterConfig, RetryPolicy};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use url::Url;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const APP_ID: &str = "987654321";
const APP_SECRET: &str = "independent-app-secret-42";
const TOKEN: &str = "EAAG-independent-user-token-abcdef0123";
const OTHER_TOKEN: &str = "EAAG-another-customer-token-9876543210";
const ATTEMPTS: u32 = 3;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// The proof computed here, independently of the crate.
fn proof_for(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: ATTEMPTS,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        budget: Duration::from_secs(20),
    }
}

fn client_for(server: &MockServer) -> GraphClient {
    let cfg = GraphConfig::new(APP_ID, secret(APP_SECRET))
        .with_base_url(Url::parse(&server.uri()).unwrap())
        .with_retry(retry())
        .with_limiter(LimiterConfig {
            slow_down_from: 90,
            max_spacing: Duration::from_millis(5),
            queue_spacing: Duration::from_millis(1),
            usage_ttl: Duration::from_secs(60),
        })
        .with_timeout(Duration::from_secs(10));
    assert_eq!(cfg.api_version, "v25.0", "the default version is live");
    GraphClient::new(cfg).unwrap()
}

// ------------------------------------------------------------------ the calls and their shapes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    DebugToken,
    Me,
    Exchange,
    AdAccounts,
    AdAccount,
    FindAudiences,
    CreateAudience,
    AddMembers,
    RemoveMembers,
    Revoke,
}

const ALL_CALLS: [Call; 10] = [
    Call::DebugToken,
    Call::Me,
    Call::Exchange,
    Call::AdAccounts,
    Call::AdAccount,
    Call::FindAudiences,
    Call::CreateAudience,
    Call::AddMembers,
    Call::RemoveMembers,
    Call::Revoke,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    User,
    App,
    ClientCredentials,
}

const HASH_A: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const HASH_B: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn payload() -> Payload {
    Payload::from_rows(
        vec![MemberKey::EMAIL, MemberKey::MADID],
        &[
            vec![HASH_A.to_owned(), String::new()],
            vec![
                HASH_B.to_owned(),
                "6f0e1b2c-aaaa-bbbb-cccc-0123456789ab".to_owned(),
            ],
        ],
    )
}

fn session(seq: u32) -> UploadSession {
    UploadSession {
        session_id: 8_123_456_789,
        batch_seq: seq,
        last_batch: false,
        estimated_num_total: Some(25_000),
    }
}

fn users(n: usize) -> Vec<FacebookUserId> {
    (1..=n)
        .map(|i| FacebookUserId::new(format!("{}", 10_000 + i)).unwrap())
        .collect()
}

impl Call {
    fn method(self) -> &'static str {
        match self {
            Call::CreateAudience | Call::AddMembers | Call::Revoke => "POST",
            Call::RemoveMembers => "DELETE",
            _ => "GET",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Call::DebugToken => "/v25.0/debug_token",
            Call::Me => "/v25.0/me",
            Call::Exchange => "/v25.0/oauth/access_token",
            Call::AdAccounts => "/v25.0/me/adaccounts",
            Call::AdAccount => "/v25.0/act_31337",
            Call::FindAudiences | Call::Revoke => "/v25.0/",
            Call::CreateAudience => "/v25.0/act_31337/customaudiences",
            Call::AddMembers | Call::RemoveMembers => "/v25.0/6001/users",
        }
    }

    fn auth(self) -> Auth {
        match self {
            Call::DebugToken | Call::Revoke => Auth::App,
            Call::Exchange => Auth::ClientCredentials,
            _ => Auth::User,
        }
    }

    /// The parameters besides authentication, exactly.
    fn params(self) -> BTreeMap<String, String> {
        let pairs: Vec<(&str, String)> = match self {
            Call::DebugToken => vec![("input_token", TOKEN.into())],
            Call::Me => vec![("fields", "id,name".into())],
            Call::Exchange => vec![
                ("grant_type", "fb_exchange_token".into()),
                ("client_id", APP_ID.into()),
                ("client_secret", APP_SECRET.into()),
                ("fb_exchange_token", TOKEN.into()),
            ],
            Call::AdAccounts => vec![
                ("fields", "id,name,business,user_tos_accepted".into()),
                ("limit", "100".into()),
            ],
            Call::AdAccount => vec![("fields", "id,name,business,user_tos_accepted".into())],
            Call::FindAudiences => vec![
                ("ids", "6001,6002".into()),
                (
                    "fields",
                    "id,account_id,name,description,time_created".into(),
                ),
            ],
            Call::CreateAudience => vec![
                ("name", "Narrative buyers".into()),
                ("description", "d".repeat(100)),
                ("subtype", "CUSTOM".into()),
                ("customer_file_source", "PARTNER_PROVIDED_ONLY".into()),
            ],
            Call::AddMembers => vec![
                ("payload", payload_json()),
                ("session", "<checked separately>".into()),
            ],
            Call::RemoveMembers => vec![("payload", payload_json())],
            Call::Revoke => vec![
                ("batch", "<checked separately>".into()),
                ("include_headers", "false".into()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn success(self) -> Value {
        match self {
            Call::DebugToken => json!({"data": {
                "app_id": APP_ID, "type": "USER", "application": "x", "is_valid": true,
                "scopes": ["ads_management", "business_management"], "issued_at": 1_700_000_000,
                "expires_at": 1_760_000_000, "data_access_expires_at": 1_770_000_000, "user_id": "4711"
            }}),
            Call::Me => json!({"id": "4711", "name": "Grace"}),
            Call::Exchange => {
                json!({"access_token": "EAAG-long-lived-from-checker-777", "token_type": "bearer", "expires_in": 5_184_000})
            }
            Call::AdAccounts => json!({"data": [{
                "id": "act_31337", "name": "Main",
                "business": {"id": "55", "name": "Biz"},
                "user_tos_accepted": {"custom_audience_tos": 1}
            }]}),
            Call::AdAccount => {
                json!({"id": "act_31337", "name": "Main", "business": {"id": "55", "name": "Biz"}})
            }
            Call::FindAudiences => json!({"6001": {
                "id": "6001", "account_id": "31337", "name": "a", "description": "", "time_created": 1_700_000_000
            }}),
            Call::CreateAudience => json!({"id": "6003"}),
            Call::AddMembers => json!({
                "audience_id": "6001", "session_id": "8123456789", "num_received": 2,
                "num_invalid_entries": 0, "invalid_entry_samples": {}
            }),
            Call::RemoveMembers => json!({
                "audience_id": "6001", "num_received": 2, "num_invalid_entries": 0,
                "invalid_entry_samples": {}
            }),
            Call::Revoke => {
                let ok = json!({"code": 200, "headers": [], "body": "{\"success\":true}"});
                Value::Array(vec![ok; 3])
            }
        }
    }

    async fn invoke(self, c: &GraphClient) -> Result<(), Error> {
        let token = secret(TOKEN);
        let account = AdAccountId::parse("act_31337").unwrap();
        let audience = UploadTarget {
            ad_account: account.clone(),
            audience: AudienceId::parse("6001").unwrap(),
        };
        match self {
            Call::DebugToken => {
                let info = c.token_info(&token).await?;
                assert!(info.is_valid);
                assert_eq!(info.user_id.unwrap().as_str(), "4711");
            }
            Call::Me => {
                let me = FacebookAccounts::me(c, &token).await?;
                assert_eq!(me.name, "Grace");
            }
            Call::Exchange => {
                let long = FacebookAccounts::exchange_long_lived(c, &token).await?;
                assert_eq!(long.expires_in, Some(5_184_000));
            }
            Call::AdAccounts => {
                let accounts = FacebookAccounts::ad_accounts(c, &token).await?;
                assert_eq!(accounts.len(), 1);
                assert!(accounts[0].user_accepted_custom_audience_tos);
            }
            Call::AdAccount => {
                let one = FacebookAccounts::ad_account(c, &token, &account).await?;
                if let Some(one) = one {
                    assert_eq!(one.id.as_str(), "act_31337");
                }
            }
            Call::FindAudiences => {
                let ids = [
                    audience.audience.clone(),
                    AudienceId::parse("6002").unwrap(),
                ];
                let found = AudienceSink::find_audiences(c, &token, &ids).await?;
                assert!(found.len() <= 1);
            }
            Call::CreateAudience => {
                // a description over 100 characters is cut to 100
                let long = "d".repeat(140);
                let created =
                    AudienceSink::create_audience(c, &token, &account, "Narrative buyers", &long)
                        .await?;
                assert_eq!(created.id.as_str(), "6003");
            }
            Call::AddMembers => {
                let r = AudienceSink::add_members(c, &token, &audience, &payload(), &session(1))
                    .await?;
                // a finished or expired session is an outcome for the engine, not an error
                if let UploadOutcome::Accepted(totals) = r {
                    assert_eq!(totals.received, 2);
                }
            }
            Call::RemoveMembers => {
                let r = AudienceSink::remove_members(c, &token, &audience, &payload()).await?;
                assert_eq!(r.received, 2);
            }
            Call::Revoke => {
                let results = FacebookAccounts::revoke_permissions(c, &users(3)).await?;
                assert_eq!(results.len(), 3);
                for (_, r) in results {
                    r?;
                }
            }
        }
        Ok(())
    }
}

fn payload_json() -> String {
    payload().to_json()
}

fn pairs_of(raw: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    if map.len() != pairs.len() {
        return Err(format!("duplicate parameters: {pairs:?}"));
    }
    Ok(map)
}

/// Everything wrong with one request for `call` (empty when the shape is right).
fn shape_problems(call: Call, req: &Request) -> Vec<String> {
    let mut problems = Vec::new();
    if req.method.as_str() != call.method() {
        problems.push(format!(
            "method {} instead of {}",
            req.method,
            call.method()
        ));
    }
    // when facebook refuses an `ids` lookup, the ids are looked up one by one
    let single_lookup =
        call == Call::FindAudiences && matches!(req.url.path(), "/v25.0/6001" | "/v25.0/6002");
    if req.url.path() != call.path() && !single_lookup {
        problems.push(format!(
            "path {} instead of {}",
            req.url.path(),
            call.path()
        ));
    }
    let query = match pairs_of(req.url.query().unwrap_or("").as_bytes()) {
        Ok(q) => q,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    let params = if call.method() == "GET" {
        if !req.body.is_empty() {
            problems.push("a GET with a body".into());
        }
        query
    } else {
        if !query.is_empty() {
            problems.push(format!(
                "a {} must carry its parameters (and token) in the body, not the url: {:?}",
                call.method(),
                query.keys()
            ));
        }
        let content_type = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type != "application/x-www-form-urlencoded" {
            problems.push(format!("content type {content_type:?}"));
        }
        match pairs_of(&req.body) {
            Ok(b) => b,
            Err(e) => {
                problems.push(e);
                return problems;
            }
        }
    };
    let mut expected = call.params();
    if single_lookup {
        expected.remove("ids");
    }
    match call.auth() {
        Auth::User => {
            let token = params.get("access_token").cloned().unwrap_or_default();
            if token != TOKEN && token != OTHER_TOKEN {
                problems.push("no user access_token".into());
            }
            expected.insert("access_token".into(), token.clone());
            expected.insert("appsecret_proof".into(), proof_for(&token));
        }
        Auth::App => {
            expected.insert("access_token".into(), format!("{APP_ID}|{APP_SECRET}"));
        }
        Auth::ClientCredentials => {}
    }
    // the separately checked values
    for key in ["session", "batch"] {
        if let (Some(v), true) = (params.get(key), expected.contains_key(key)) {
            expected.insert(key.into(), v.clone());
        }
    }
    if params != expected {
        let mut keys: Vec<&String> = params.keys().chain(expected.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if params.get(k) != expected.get(k) {
                problems.push(format!(
                    "parameter {k}: sent {:?}, expected {:?}",
                    params
                        .get(k)
                        .map(|v| v.chars().take(80).collect::<String>()),
                    expected
                        .get(k)
                        .map(|v| v.chars().take(80).collect::<String>())
                ));
            }
        }
    }
    if call == Call::AddMembers {
        match params
            .get("session")
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            Some(Value::Object(s)) => {
                let keys: Vec<&str> = s.keys().map(String::as_str).collect();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                if sorted
                    != [
                        "batch_seq",
                        "estimated_num_total",
                        "last_batch_flag",
                        "session_id",
                    ]
                {
                    problems.push(format!("session keys {keys:?}"));
                }
                if s.get("session_id") != Some(&json!(8_123_456_789u64))
                    || s.get("batch_seq")
                        .and_then(Value::as_u64)
                        .is_none_or(|b| b < 1)
                    || !s.get("last_batch_flag").is_some_and(Value::is_boolean)
                    || s.get("estimated_num_total") != Some(&json!(25_000))
                {
                    problems.push(format!("session values {s:?}"));
                }
            }
            other => problems.push(format!("session is not a JSON object: {other:?}")),
        }
    }
    if call == Call::Revoke {
        match params
            .get("batch")
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            Some(Value::Array(ops)) if !ops.is_empty() && ops.len() <= 50 => {
                for op in ops {
                    let rel = op["relative_url"].as_str().unwrap_or("");
                    let user_ok = rel
                        .strip_suffix("/permissions")
                        .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()));
                    if op["method"] != "DELETE" || !user_ok {
                        problems.push(format!("batch operation {op}"));
                    }
                }
            }
            other => problems.push(format!("batch is not 1..=50 operations: {other:?}")),
        }
    }
    problems
}

/// A wiremock responder that checks every request's shape and answers from a script (the
/// last answer repeats).
#[derive(Clone)]
struct Checker {
    call: Call,
    script: Arc<Mutex<Vec<ResponseTemplate>>>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Respond for Checker {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let problems = shape_problems(self.call, req);
        self.problems.lock().unwrap().extend(problems);
        let mut script = self.script.lock().unwrap();
        if script.len() > 1 {
            script.remove(0)
        } else {
            script[0].clone()
        }
    }
}

async fn checked_server(call: Call, script: Vec<ResponseTemplate>) -> (MockServer, Checker) {
    let server = MockServer::start().await;
    let checker = Checker {
        call,
        script: Arc::new(Mutex::new(script)),
        problems: Arc::default(),
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(checker.clone())
        .mount(&server)
        .await;
    (server, checker)
}

async fn attempts(server: &MockServer) -> u32 {
    server.received_requests().await.unwrap().len() as u32
}

fn assert_no_problems(checker: &Checker) {
    let problems = checker.problems.lock().unwrap();
    assert!(
        problems.is_empty(),
        "{:?}: request shape problems: {problems:#?}",
        checker.call
    );
}

#[tokio::test]
async fn every_call_has_the_documented_request_shape() {
    for call in ALL_CALLS {
        let ok = ResponseTemplate::new(200).set_body_json(call.success());
        let (server, checker) = checked_server(call, vec![ok]).await;
        call.invoke(&client_for(&server)).await.unwrap();
        assert_eq!(attempts(&server).await, 1, "{call:?}");
        assert_no_problems(&checker);
    }
}

// ------------------------------------------------------------------ the error table

fn error_body(code: i64, subcode: Option<i64>, transient: bool) -> Value {
    let mut e = json!({
        "message": format!("checker error {code}"),
        "type": "OAuthException",
        "code": code,
        "error_user_title": "Checker title",
        "error_user_msg": "Checker user message",
        "fbtrace_id": "CheckerTrace",
        "is_transient": transient,
    });
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    json!({ "error": e })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    InvalidToken,
    Permission,
    Rejected,
    Transient,
    Throttled,
    Ok,
}

fn variant(result: &Result<(), Error>) -> Expect {
    match result {
        Ok(()) => Expect::Ok,
        Err(Error::InvalidToken { .. }) => Expect::InvalidToken,
        Err(Error::PermissionDenied { .. }) => Expect::Permission,
        Err(Error::Rejected { .. }) => Expect::Rejected,
        Err(Error::Transient { .. }) => Expect::Transient,
        Err(Error::Throttled { .. }) => Expect::Throttled,
        Err(other) => panic!("unexpected core error {other:?}"),
    }
}

/// (label, http status, body, table class).
fn error_rows() -> Vec<(&'static str, u16, ResponseTemplate, &'static str)> {
    let graph = |status: u16, code: i64, sub: Option<i64>, transient: bool| {
        ResponseTemplate::new(status).set_body_json(error_body(code, sub, transient))
    };
    vec![
        ("190", 400, graph(400, 190, None, false), "token"),
        (
            "190/463 expired",
            400,
            graph(400, 190, Some(463), false),
            "token",
        ),
        (
            "190/460 revoked",
            400,
            graph(400, 190, Some(460), false),
            "token",
        ),
        ("102 session", 400, graph(400, 102, None, false), "token"),
        (
            "10 permission",
            403,
            graph(403, 10, None, false),
            "permission",
        ),
        (
            "200/1870090 tos",
            403,
            graph(403, 200, Some(1870090), false),
            "permission",
        ),
        (
            "294 ads_management",
            403,
            graph(403, 294, None, false),
            "permission",
        ),
        ("299", 403, graph(403, 299, None, false), "permission"),
        (
            "100/1713230 flagged",
            400,
            graph(400, 100, Some(1713230), false),
            "flagged",
        ),
        ("100 bad request", 400, graph(400, 100, None, false), "bad"),
        ("2650", 400, graph(400, 2650, None, false), "bad"),
        (
            "2650/1870145 update in progress",
            400,
            graph(400, 2650, Some(1870145), false),
            "update",
        ),
        (
            "2650/1870159 session finished",
            400,
            graph(400, 2650, Some(1870159), false),
            "session",
        ),
        (
            "2650/1870158 session timed out",
            400,
            graph(400, 2650, Some(1870158), false),
            "session",
        ),
        ("1 unknown", 500, graph(500, 1, None, false), "transient"),
        ("2 service", 503, graph(503, 2, None, false), "transient"),
        (
            "is_transient",
            400,
            graph(400, 12345, None, true),
            "transient",
        ),
        (
            "html 502",
            502,
            ResponseTemplate::new(502).set_body_raw("<html>oops</html>", "text/html"),
            "transient",
        ),
        ("4 app limit", 400, graph(400, 4, None, false), "throttle"),
        (
            "17 user limit",
            400,
            graph(400, 17, None, false),
            "throttle",
        ),
        (
            "32 page limit",
            400,
            graph(400, 32, None, false),
            "throttle",
        ),
        (
            "341 app limit",
            400,
            graph(400, 341, None, false),
            "throttle",
        ),
        (
            "613 rate limit",
            400,
            graph(400, 613, None, false),
            "throttle",
        ),
        (
            "80003 audience limit",
            400,
            graph(400, 80003, Some(2446079), false),
            "throttle",
        ),
        ("429 plain", 429, graph(429, 99999, None, false), "throttle"),
        (
            "368 policy",
            400,
            graph(400, 368, Some(1390008), false),
            "policy",
        ),
        ("803 alias", 400, graph(400, 803, None, false), "803"),
    ]
}

/// What the table says for `class` on `call`: the core variant and how many requests.
fn expectation(call: Call, class: &str) -> (Expect, u32) {
    let retried = ATTEMPTS;
    match class {
        // an invalid app token is the app's configuration, not a profile's token
        "token" if call.auth() == Auth::App => (Expect::Rejected, 1),
        "token" => (Expect::InvalidToken, 1),
        "permission" => (Expect::Permission, 1),
        "flagged" | "bad" => (Expect::Rejected, 1),
        // creating twice would leave a duplicate audience: not re-sent after an ambiguous error
        "transient" if call == Call::CreateAudience => (Expect::Transient, 1),
        "transient" => (Expect::Transient, retried),
        // waited for within the budget, then handed back as a throttle (no attempt used up)
        "throttle" | "update" => (Expect::Throttled, retried),
        // a policy block asks for a long wait: handed back at once
        "policy" => (Expect::Throttled, 1),
        // the engine's outcomes on uploads; meaningless anywhere else
        "session" if call == Call::AddMembers => (Expect::Ok, 1),
        "session" => (Expect::Rejected, 1),
        "803" => match call {
            Call::AddMembers => (Expect::Transient, retried),
            // an unknown id is simply absent: the lookup falls back to single ids
            Call::FindAudiences => (Expect::Ok, 3),
            Call::AdAccount => (Expect::Ok, 1),
            _ => (Expect::Rejected, 1),
        },
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn every_error_class_on_every_call_gives_the_right_core_error_and_attempts() {
    let mut failures = Vec::new();
    for call in ALL_CALLS {
        for (label, _status, response, class) in error_rows() {
            let (server, checker) = checked_server(call, vec![response]).await;
            let result = call.invoke(&client_for(&server)).await;
            let (want, want_attempts) = expectation(call, class);
            let got = variant(&result);
            let n = attempts(&server).await;
            if got != want || n != want_attempts {
                failures.push(format!(
                    "{call:?} / {label}: got {got:?} after {n} requests, expected {want:?} after {want_attempts}"
                ));
            }
            if let Err(err) = &result
                && want != Expect::Ok
                && class != "transient"
            {
                // the graph error (code, subcode, trace id) stays reachable as the source
                let text = format!("{err:?}");
                assert!(text.contains("CheckerTrace"), "{call:?}/{label}: {text}");
            }
            if class == "permission"
                && let Err(Error::PermissionDenied { reason, .. }) = &result
            {
                assert!(reason.contains("Checker user message"), "{reason}");
            }
            assert_no_problems(&checker);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn transient_and_throttled_failures_recover_within_the_attempts() {
    for call in ALL_CALLS {
        let script = vec![
            ResponseTemplate::new(503).set_body_json(error_body(2, None, true)),
            ResponseTemplate::new(400).set_body_json(error_body(17, None, false)),
            ResponseTemplate::new(200).set_body_json(call.success()),
        ];
        let (server, checker) = checked_server(call, script).await;
        let result = call.invoke(&client_for(&server)).await;
        if call == Call::CreateAudience {
            // the 503 may have created it: not re-sent
            assert!(matches!(result, Err(Error::Transient { .. })), "{result:?}");
            assert_eq!(attempts(&server).await, 1);
        } else {
            result.unwrap_or_else(|e| panic!("{call:?}: {e:?}"));
            assert_eq!(attempts(&server).await, 3, "{call:?}");
        }
        assert_no_problems(&checker);
    }
}

#[tokio::test]
async fn a_first_upload_803_is_retried_with_the_same_batch() {
    let script = vec![
        ResponseTemplate::new(400).set_body_json(error_body(803, None, false)),
        ResponseTemplate::new(200).set_body_json(Call::AddMembers.success()),
    ];
    let (server, checker) = checked_server(Call::AddMembers, script).await;
    Call::AddMembers.invoke(&client_for(&server)).await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "same rows, session and batch");
    assert_no_problems(&checker);
}

// ------------------------------------------------------------------ rate limits

fn buc_header(percent: u32, regain_minutes: u32) -> String {
    json!({"1234": [{"type": "CUSTOM_AUDIENCE", "call_count": percent, "total_cputime": 1,
        "total_time": 1, "estimated_time_to_regain_access": regain_minutes}]})
    .to_string()
}

#[tokio::test]
async fn a_throttle_with_a_long_regain_estimate_gives_up_with_the_wait_for_that_ad_account_only() {
    let throttled = ResponseTemplate::new(400)
        .set_body_json(error_body(80003, Some(2446079), false))
        .insert_header("x-business-use-case-usage", buc_header(100, 7).as_str());
    let ok = ResponseTemplate::new(200).set_body_json(Call::AddMembers.success());
    let (server, checker) = checked_server(Call::AddMembers, vec![throttled, ok]).await;
    let c = client_for(&server);
    let to = |account: &str| UploadTarget {
        ad_account: AdAccountId::parse(account).unwrap(),
        audience: AudienceId::parse("6001").unwrap(),
    };
    let err = AudienceSink::add_members(
        &c,
        &secret(TOKEN),
        &to("act_31337"),
        &payload(),
        &session(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(6 * 60) && wait <= Duration::from_secs(7 * 60),
        "{wait:?}"
    );
    assert_eq!(
        attempts(&server).await,
        1,
        "a 7 minute wait exceeds the budget"
    );
    // the same ad account is held back without a request, whoever's token it is
    let err = AudienceSink::add_members(
        &c,
        &secret(OTHER_TOKEN),
        &to("act_31337"),
        &payload(),
        &session(1),
    )
    .await
    .unwrap_err();
    assert!(err.retry_after().unwrap() > Duration::from_secs(6 * 60));
    assert_eq!(attempts(&server).await, 1);
    // another ad account's uploads go on
    AudienceSink::add_members(&c, &secret(TOKEN), &to("act_4242"), &payload(), &session(1))
        .await
        .unwrap();
    assert_eq!(attempts(&server).await, 2);
    assert_no_problems(&checker);
}

#[tokio::test]
async fn a_short_regain_estimate_is_waited_for_then_retried() {
    let throttled = ResponseTemplate::new(400)
        .set_body_json(error_body(17, None, false))
        .insert_header("x-business-use-case-usage", buc_header(100, 0).as_str());
    let ok = ResponseTemplate::new(200).set_body_json(Call::Me.success());
    let (server, checker) = checked_server(Call::Me, vec![throttled, ok]).await;
    FacebookAccounts::me(&client_for(&server), &secret(TOKEN))
        .await
        .unwrap();
    assert_eq!(attempts(&server).await, 2);
    assert_no_problems(&checker);
}

#[tokio::test]
async fn app_usage_near_the_limit_holds_back_every_call_when_the_wait_exceeds_the_budget() {
    // 99%: just below the limit, where pacing applies (at 100% Facebook's throttle governs)
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(Call::Me.success())
                .insert_header(
                    "x-app-usage",
                    r#"{"call_count":99,"total_cputime":10,"total_time":10}"#,
                ),
        )
        .mount(&server)
        .await;
    let cfg = GraphConfig::new(APP_ID, secret(APP_SECRET))
        .with_base_url(Url::parse(&server.uri()).unwrap())
        .with_retry(retry())
        .with_limiter(LimiterConfig {
            slow_down_from: 75,
            max_spacing: Duration::from_secs(3600),
            queue_spacing: Duration::from_millis(1),
            usage_ttl: Duration::from_secs(600),
        });
    let c = GraphClient::new(cfg).unwrap();
    FacebookAccounts::me(&c, &secret(TOKEN)).await.unwrap();
    for token in [TOKEN, OTHER_TOKEN] {
        let err = FacebookAccounts::me(&c, &secret(token)).await.unwrap_err();
        assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
        assert!(err.retry_after().unwrap() > Duration::from_secs(3000));
    }
    assert_eq!(
        attempts(&server).await,
        1,
        "nothing sent while usage is at 99%"
    );
}

// ------------------------------------------------------------------ paging, batches, sessions

#[tokio::test]
async fn ad_account_pages_are_followed_with_the_current_token_and_proof() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v25.0/me/adaccounts?access_token=STALE-TOKEN-IN-THE-LINK-000&appsecret_proof=stale&fields=id%2Cname%2Cbusiness%2Cuser_tos_accepted&limit=100&after=QVFIUk",
        server.uri()
    );
    let page1 = json!({"data": [{"id": "act_1", "name": "a"}], "paging": {"cursors": {"after": "QVFIUk"}, "next": next}});
    let page2 = json!({"data": [{"id": "act_2", "name": "b"}], "paging": {"cursors": {"before": "QVFIUk"}}});
    let seen = Arc::new(Mutex::new(Vec::<BTreeMap<String, String>>::new()));
    let log = seen.clone();
    Mock::given(wiremock::matchers::path("/v25.0/me/adaccounts"))
        .respond_with(move |req: &Request| {
            let q = pairs_of(req.url.query().unwrap_or("").as_bytes()).unwrap();
            let page = if q.contains_key("after") {
                &page2
            } else {
                &page1
            };
            log.lock().unwrap().push(q);
            ResponseTemplate::new(200).set_body_json(page)
        })
        .mount(&server)
        .await;
    let accounts = FacebookAccounts::ad_accounts(&client_for(&server), &secret(TOKEN))
        .await
        .unwrap();
    let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["act_1", "act_2"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["access_token"], TOKEN);
    assert_eq!(seen[1]["appsecret_proof"], proof_for(TOKEN));
    assert_eq!(seen[1]["after"], "QVFIUk");
    assert_eq!(seen[1]["fields"], "id,name,business,user_tos_accepted");
}

#[tokio::test]
async fn revoking_120_users_sends_three_app_token_batches_of_at_most_fifty() {
    let all = users(120);
    let server = MockServer::start().await;
    let checker = Checker {
        call: Call::Revoke,
        script: Arc::new(Mutex::new(vec![ResponseTemplate::new(200)])),
        problems: Arc::default(),
    };
    let problems = checker.problems.clone();
    Mock::given(wiremock::matchers::any())
        .respond_with(move |req: &Request| {
            problems
                .lock()
                .unwrap()
                .extend(shape_problems(Call::Revoke, req));
            let form = pairs_of(&req.body).unwrap();
            let ops: Vec<Value> = serde_json::from_str(&form["batch"]).unwrap();
            let answers: Vec<Value> = ops
                .iter()
                .map(|op| {
                    if op["relative_url"] == "10007/permissions" {
                        json!({"code": 403, "body": error_body(200, None, false).to_string()})
                    } else {
                        json!({"code": 200, "body": "{\"success\":true}"})
                    }
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(answers)
        })
        .mount(&server)
        .await;
    let results = FacebookAccounts::revoke_permissions(&client_for(&server), &all)
        .await
        .unwrap();
    assert_eq!(results.len(), 120);
    for (i, (user, r)) in results.iter().enumerate() {
        assert_eq!(user, &all[i], "results in order");
        if user.as_str() == "10007" {
            assert!(matches!(r, Err(Error::PermissionDenied { .. })), "{r:?}");
        } else {
            assert!(r.is_ok(), "{user:?}: {r:?}");
        }
    }
    let reqs = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| {
            let form = pairs_of(&r.body).unwrap();
            serde_json::from_str::<Vec<Value>>(&form["batch"])
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    assert_no_problems(&checker);
}

async fn upload_with(c: &GraphClient, seq: u32, rows: usize) -> Received {
    let data: Vec<Vec<String>> = (0..rows)
        .map(|i| vec![format!("{:064x}", seq as usize * 1000 + i)])
        .collect();
    let p = Payload::from_rows(vec![MemberKey::EMAIL], &data);
    let target = UploadTarget {
        ad_account: AdAccountId::parse("act_31337").unwrap(),
        audience: AudienceId::parse("6001").unwrap(),
    };
    match AudienceSink::add_members(c, &secret(TOKEN), &target, &p, &session(seq))
        .await
        .unwrap()
    {
        UploadOutcome::Accepted(totals) => totals,
        other => panic!("{other:?}"),
    }
}

/// A server answering uploads with the given (num_received, num_invalid_entries) in order.
async fn upload_server(answers: Vec<(u64, u64)>) -> MockServer {
    let server = MockServer::start().await;
    let script: Vec<ResponseTemplate> = answers
        .into_iter()
        .map(|(n, i)| {
            ResponseTemplate::new(200).set_body_json(json!({
                "audience_id": "6001", "session_id": "8123456789",
                "num_received": n, "num_invalid_entries": i, "invalid_entry_samples": {}
            }))
        })
        .collect();
    let script = Mutex::new(script);
    Mock::given(wiremock::matchers::any())
        .respond_with(move |_: &Request| {
            let mut s = script.lock().unwrap();
            if s.len() > 1 {
                s.remove(0)
            } else {
                s[0].clone()
            }
        })
        .mount(&server)
        .await;
    server
}

/// Facebook's numbers are the session's running totals and are returned exactly as reported
/// (the engine subtracts against its durable checkpoint). The case a per-batch heuristic got
/// wrong: batch 1 of 10 rows all received, batch 2 of 10,000 rows of which 9,000 received —
/// Facebook answers 10, then 9,010, and 9,010 is what the client returns.
#[tokio::test]
async fn receipts_are_facebooks_running_totals_as_reported() {
    let total = |received, invalid| Received { received, invalid };
    let server = upload_server(vec![(10, 0), (9_010, 1_000)]).await;
    let c = client_for(&server);
    assert_eq!(upload_with(&c, 1, 10).await, total(10, 0));
    assert_eq!(upload_with(&c, 2, 10_000).await, total(9_010, 1_000));

    // a resumed session (a new process) gets the totals so far, untouched
    let server = upload_server(vec![(25, 4)]).await;
    assert_eq!(upload_with(&client_for(&server), 3, 5).await, total(25, 4));
}

#[tokio::test]
async fn an_invalid_session_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let c = client_for(&server);
    for bad in [
        UploadSession {
            session_id: 0,
            ..session(1)
        },
        UploadSession {
            session_id: u64::MAX,
            ..session(1)
        },
        session(0),
    ] {
        let err = AudienceSink::add_members(
            &c,
            &secret(TOKEN),
            &UploadTarget {
                ad_account: AdAccountId::parse("act_31337").unwrap(),
                audience: AudienceId::parse("6001").unwrap(),
            },
            &payload(),
            &bad,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    }
    assert_eq!(attempts(&server).await, 0);
}

// ------------------------------------------------------------------ transport

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(Call::Me.success()))
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 307, 308] {
        for call in [Call::Me, Call::AddMembers] {
            let server = MockServer::start().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(
                    ResponseTemplate::new(status)
                        .insert_header("location", format!("{}/steal", elsewhere.uri()).as_str()),
                )
                .mount(&server)
                .await;
            let result = call.invoke(&client_for(&server)).await;
            assert!(
                matches!(result, Err(Error::Rejected { .. })),
                "{status} {call:?}: {result:?}"
            );
            assert_eq!(attempts(&server).await, 1);
        }
    }
    assert_eq!(
        attempts(&elsewhere).await,
        0,
        "nothing (and no token) went to the redirect target"
    );
}

#[tokio::test]
async fn an_attempt_never_outlives_the_call_budget() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(Call::Me.success())
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let cfg = GraphConfig::new(APP_ID, secret(APP_SECRET))
        .with_base_url(Url::parse(&server.uri()).unwrap())
        .with_timeout(Duration::from_secs(60))
        .with_retry(RetryPolicy {
            budget: Duration::from_millis(200),
            ..retry()
        });
    let c = GraphClient::new(cfg).unwrap();
    // generous outer bound: the call itself gives up after about one second
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        FacebookAccounts::me(&c, &secret(TOKEN)),
    )
    .await
    .expect("the call respects its budget instead of the 60 s per-call timeout");
    assert!(matches!(result, Err(Error::Transient { .. })), "{result:?}");
}

#[test]
fn the_checker_proof_matches_the_crate() {
    assert_eq!(
        proof_for(TOKEN),
        facebook_marketing::appsecret_proof(&secret(APP_SECRET), &secret(TOKEN))
    );
    assert_ne!(proof_for(TOKEN), proof_for(OTHER_TOKEN));
    let _ = secret(TOKEN).expose_secret().len();
}
