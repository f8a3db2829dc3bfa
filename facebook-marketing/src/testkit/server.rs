//! The fake's HTTP side: routing, authentication, the Graph endpoints and fault injection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::upload::{CheckedPayload, check_payload, check_session};
use super::{
    APP_ID, APP_SECRET, Endpoint, Fault, SessionRec, Shared, State, StoredBatch, TokenRec,
    create_audience, issue_token, now_unix,
};
use crate::client::appsecret_proof;

const MAX_AUDIENCES_PER_ACCOUNT: usize = 500;
const MAX_BATCH: usize = 50;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(shared)
        // Facebook takes a full 10,000-row batch (~10 MB form-encoded with every key);
        // axum's default limit (2 MB) would refuse it with 413
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
}

/// The largest request body the fake accepts.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// A response before headers are added.
struct Reply {
    status: u16,
    body: Value,
    regain_minutes: Option<f64>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            regain_minutes: None,
        }
    }
}

fn error_body(code: i64, subcode: Option<i64>, message: &str, transient: bool) -> Value {
    let mut error = json!({
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": format!("FakeTrace{}", rand::random_range(100_000u32..999_999)),
        "is_transient": transient,
    });
    if let (Some(sub), Some(map)) = (subcode, error.as_object_mut()) {
        map.insert("error_subcode".into(), sub.into());
    }
    if subcode == Some(1870090)
        && let Some(map) = error.as_object_mut()
    {
        map.insert(
            "error_user_title".into(),
            "Custom Audience Terms Not Accepted".into(),
        );
        map.insert(
            "error_user_msg".into(),
            "You need to accept the Custom Audience Terms before you can create or edit an audience."
                .into(),
        );
    }
    json!({ "error": error })
}

fn err(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Reply {
    Reply {
        status,
        body: error_body(code, subcode, message, false),
        regain_minutes: None,
    }
}

fn missing_object(id: &str) -> Reply {
    err(
        400,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
    )
}

type Params = HashMap<String, String>;

fn collect_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
    let mut params: Params = HashMap::new();
    if let Some(q) = uri.query() {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params.extend(parse_form(body));
    } else if content_type.starts_with("application/json")
        && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
    {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.insert(k, v);
        }
    }
    if !params.contains_key("access_token")
        && let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        && let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("OAuth "))
    {
        params.insert("access_token".into(), token.trim().to_owned());
    }
    params
}

/// A form body's pairs, decoded as `url::form_urlencoded::parse` does, copying runs of plain
/// bytes whole: an upload's ~10 MB body is mostly hex digits, and decoding it byte by byte cost
/// the engine benchmark more CPU in the fake than the worker spent producing it.
fn parse_form(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'&', body).chain(std::iter::once(body.len()));
    ends.map(move |end| {
        let pair = &body[start..end];
        start = end + 1;
        pair
    })
    .filter(|p| !p.is_empty())
    .map(|pair| {
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (form_decode(name), form_decode(value))
    })
}

fn form_decode(bytes: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut run = 0;
    // the escapes are found with memchr's vectorised search
    // (an escape's two hex digits are never `%` or `+`, so no hit falls inside one decoded)
    for i in memchr::memchr2_iter(b'%', b'+', bytes) {
        if bytes[i] == b'+' {
            out.extend_from_slice(&bytes[run..i]);
            out.push(b' ');
            run = i + 1;
        } else if let Some(byte) = bytes
            .get(i + 1..i + 3)
            .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?))
        {
            out.extend_from_slice(&bytes[run..i]);
            out.push(byte);
            run = i + 3;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|rest| {
        let mut parts = rest.split('.');
        matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
        )
    })
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn classify(method: &Method, segments: &[&str], params: &Params) -> Endpoint {
    match (method.as_str(), segments) {
        ("GET", []) if params.contains_key("ids") => Endpoint::Audiences,
        ("POST", []) if params.contains_key("batch") => Endpoint::Batch,
        ("GET", ["debug_token"]) => Endpoint::DebugToken,
        ("GET", ["me"]) => Endpoint::Me,
        ("GET", ["me", "adaccounts"]) => Endpoint::AdAccounts,
        ("GET", ["oauth", "access_token"]) => Endpoint::ExchangeToken,
        ("GET", [act]) if act.starts_with("act_") => Endpoint::AdAccount,
        ("POST", [act, "customaudiences"]) if act.starts_with("act_") => Endpoint::CreateAudience,
        ("GET", [id]) if digits(id) => Endpoint::Audiences,
        ("POST", [id, "users"]) if digits(id) => Endpoint::AddMembers,
        ("DELETE", [id, "users"]) if digits(id) => Endpoint::RemoveMembers,
        ("DELETE", [id, "permissions"]) if digits(id) => Endpoint::RevokePermissions,
        _ => Endpoint::Unknown,
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = collect_params(&uri, &headers, &body);
    let path = uri.path().trim_matches('/').to_owned();
    let mut parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let version_ok = parts.first().is_some_and(|v| is_version(v));
    let version = if version_ok {
        parts.remove(0).to_owned()
    } else {
        String::new()
    };
    let endpoint = classify(&method, &parts, &params);
    let (latency, fault, usage, counts_only) = {
        let mut s = shared.lock();
        *s.calls.entry(endpoint).or_default() += 1;
        let latency = s
            .endpoint_latency
            .get(&endpoint)
            .copied()
            .unwrap_or(s.latency);
        (latency, s.take_fault(endpoint), s.usage, s.counts_only)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut accept_then_fail = false;
    match fault {
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        Some(Fault::AcceptThenFail) => accept_then_fail = true,
        Some(Fault::ServerError { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Sorry, something went wrong.</body></html>",
            )
                .into_response();
        }
        Some(Fault::Graph {
            status,
            code,
            subcode,
            is_transient,
        }) => {
            let reply = Reply {
                status,
                body: error_body(code, subcode, "injected failure", is_transient),
                regain_minutes: None,
            };
            return respond(reply, usage);
        }
        Some(Fault::ThrottleFor { code, regain }) => {
            let reply = Reply {
                status: 400,
                body: error_body(
                    code,
                    if code == 80003 { Some(2446079) } else { None },
                    "(#80003) There have been too many calls to this ad-account. Wait a bit and try again.",
                    false,
                ),
                regain_minutes: Some(regain.as_secs_f64() / 60.0),
            };
            return respond(reply, Some((100, 100)));
        }
        None => {}
    }
    // an upload's payload (~10 MB) is checked before the state is locked, so that concurrent
    // uploads are not serialised on it, and only for a request that gets that far; its errors
    // are answered where Facebook answers them
    let payload = matches!(endpoint, Endpoint::AddMembers | Endpoint::RemoveMembers)
        .then(|| {
            params
                .get("payload")
                .map(|raw| check_payload(raw, !counts_only))
        })
        .flatten();
    let reply = if !version_ok {
        err(
            400,
            2500,
            None,
            "Unknown path components: missing API version",
        )
    } else {
        let mut s = shared.lock();
        dispatch(
            &mut s, &shared, &version, endpoint, &parts, &params, payload,
        )
    };
    if accept_then_fail {
        let reply = Reply {
            status: 500,
            body: error_body(
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
                true,
            ),
            regain_minutes: None,
        };
        return respond(reply, usage);
    }
    respond(reply, usage)
}

fn respond(reply: Reply, usage: Option<(u32, u32)>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(reply.body)).into_response();
    let headers = response.headers_mut();
    if let Some((app, business)) = usage {
        let app_usage = json!({"call_count": app, "total_cputime": app / 2, "total_time": app / 2});
        let regain = reply.regain_minutes.unwrap_or(0.0);
        let buc = json!({"700800900": [{
            "type": "CUSTOM_AUDIENCE",
            "call_count": business,
            "total_cputime": business / 2,
            "total_time": business / 2,
            "estimated_time_to_regain_access": regain,
        }]});
        if let Ok(v) = HeaderValue::from_str(&app_usage.to_string()) {
            headers.insert("x-app-usage", v);
        }
        if let Ok(v) = HeaderValue::from_str(&buc.to_string()) {
            headers.insert("x-business-use-case-usage", v);
        }
    }
    response
}

/// Checks a user token and its `appsecret_proof`.
fn user_auth(s: &State, params: &Params) -> Result<TokenRec, Reply> {
    let Some(token) = params.get("access_token") else {
        return Err(err(
            400,
            104,
            None,
            "An access token is required to request this resource.",
        ));
    };
    let Some(rec) = s.tokens.get(token) else {
        return Err(err(
            400,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        ));
    };
    if !rec.valid {
        return Err(err(
            400,
            190,
            Some(460),
            "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.",
        ));
    }
    if rec.expires_at <= now_unix() {
        return Err(err(
            400,
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        ));
    }
    let expected = appsecret_proof(
        &SecretString::from(APP_SECRET.to_owned()),
        &SecretString::from(token.clone()),
    );
    match params.get("appsecret_proof") {
        None => Err(err(
            400,
            100,
            None,
            "API calls from the server require an appsecret_proof argument",
        )),
        Some(p) if *p != expected => Err(err(
            400,
            100,
            None,
            "Invalid appsecret_proof provided in the API argument",
        )),
        Some(_) => Ok(rec.clone()),
    }
}

fn app_auth(params: &Params) -> Result<(), Reply> {
    let expected = format!("{APP_ID}|{APP_SECRET}");
    match params.get("access_token") {
        Some(t) if *t == expected => Ok(()),
        Some(_) => Err(err(400, 190, None, "Invalid OAuth access token signature.")),
        None => Err(err(
            400,
            104,
            None,
            "An access token is required to request this resource.",
        )),
    }
}

fn require_ads_management(tok: &TokenRec) -> Result<(), Reply> {
    if tok.scopes.iter().any(|s| s == "ads_management") {
        Ok(())
    } else {
        Err(err(
            403,
            294,
            None,
            "(#294) Managing advertisements requires the extended permission ads_management",
        ))
    }
}

fn dispatch(
    s: &mut State,
    shared: &Shared,
    version: &str,
    endpoint: Endpoint,
    parts: &[&str],
    params: &Params,
    payload: Option<Result<CheckedPayload, String>>,
) -> Reply {
    let result = match endpoint {
        Endpoint::DebugToken => debug_token(s, params),
        Endpoint::Me => user_auth(s, params).map(|tok| {
            let name = s.users.get(&tok.user_id).cloned().unwrap_or_default();
            Reply::ok(json!({"id": tok.user_id, "name": name}))
        }),
        Endpoint::ExchangeToken => exchange(s, params),
        Endpoint::AdAccounts => ad_accounts(s, shared, version, params),
        Endpoint::AdAccount => ad_account(s, parts.first().copied().unwrap_or(""), params),
        Endpoint::Audiences => audiences(s, parts.first().copied(), params),
        Endpoint::CreateAudience => {
            create_audience_call(s, parts.first().copied().unwrap_or(""), params)
        }
        Endpoint::AddMembers => upload(
            s,
            parts.first().copied().unwrap_or(""),
            params,
            payload,
            true,
        ),
        Endpoint::RemoveMembers => upload(
            s,
            parts.first().copied().unwrap_or(""),
            params,
            payload,
            false,
        ),
        Endpoint::Batch => batch(s, params),
        Endpoint::RevokePermissions => app_auth(params).map(|()| {
            let answer = revoke(s, parts.first().copied().unwrap_or(""));
            match answer {
                Some((status, body)) => Reply {
                    status,
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                    regain_minutes: None,
                },
                None => err(500, 2, None, "temporary failure"),
            }
        }),
        Endpoint::Any | Endpoint::Unknown => Err(err(
            400,
            100,
            None,
            "Unsupported request - method type or path not known to the fake",
        )),
    };
    result.unwrap_or_else(|e| e)
}

fn debug_token(s: &State, params: &Params) -> Result<Reply, Reply> {
    app_auth(params)?;
    let Some(input) = params.get("input_token") else {
        return Err(err(400, 100, None, "The parameter input_token is required"));
    };
    let data = match s.tokens.get(input) {
        Some(t) => {
            let valid = t.valid && t.expires_at > now_unix();
            json!({
                "app_id": APP_ID,
                "type": "USER",
                "application": "Fake app",
                "data_access_expires_at": t.data_access_expires_at,
                "expires_at": t.expires_at,
                "is_valid": valid,
                "issued_at": t.issued_at,
                "scopes": t.scopes,
                "user_id": t.user_id,
            })
        }
        None => json!({
            "error": {"code": 190, "message": "Invalid OAuth access token."},
            "is_valid": false,
            "scopes": [],
        }),
    };
    Ok(Reply::ok(json!({ "data": data })))
}

fn exchange(s: &mut State, params: &Params) -> Result<Reply, Reply> {
    if params.get("grant_type").map(String::as_str) != Some("fb_exchange_token") {
        return Err(err(400, 100, None, "Invalid grant_type"));
    }
    if params.get("client_id").map(String::as_str) != Some(APP_ID) {
        return Err(err(
            400,
            101,
            None,
            "Error validating application. Invalid application ID.",
        ));
    }
    if params.get("client_secret").map(String::as_str) != Some(APP_SECRET) {
        return Err(err(400, 1, None, "Error validating client secret."));
    }
    let Some(short) = params.get("fb_exchange_token") else {
        return Err(err(400, 100, None, "Missing fb_exchange_token"));
    };
    let rec = match s.tokens.get(short) {
        Some(t) if t.valid && t.expires_at > now_unix() => t.clone(),
        _ => {
            return Err(err(
                400,
                190,
                Some(460),
                "Error validating access token: The session has been invalidated.",
            ));
        }
    };
    let token = issue_token(s, &rec.user_id, true, rec.scopes);
    use secrecy::ExposeSecret;
    Ok(Reply::ok(json!({
        "access_token": token.expose_secret(),
        "token_type": "bearer",
        "expires_in": 60 * 24 * 3600,
    })))
}

fn account_node(id: &str, a: &super::AccountRec) -> Value {
    let mut node = json!({
        "id": id,
        "account_id": id.trim_start_matches("act_"),
        "name": a.name,
    });
    if let Some(map) = node.as_object_mut() {
        if let Some((bid, bname)) = &a.business {
            map.insert("business".into(), json!({"id": bid, "name": bname}));
        }
        if a.tos_accepted {
            map.insert(
                "user_tos_accepted".into(),
                json!({"custom_audience_tos": 1}),
            );
        }
    }
    node
}

fn ad_accounts(s: &State, shared: &Shared, version: &str, params: &Params) -> Result<Reply, Reply> {
    let tok = user_auth(s, params)?;
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let offset: usize = params
        .get("after")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let mine: Vec<(&String, &super::AccountRec)> = s
        .accounts
        .iter()
        .filter(|(_, a)| a.users.contains(&tok.user_id))
        .collect();
    let data: Vec<Value> = mine
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(id, a)| account_node(id, a))
        .collect();
    let end = offset + data.len();
    let mut paging = json!({"cursors": {"before": offset.to_string(), "after": end.to_string()}});
    if end < mine.len() {
        let base = if s.foreign_paging {
            "http://graph.example.invalid/".to_owned()
        } else {
            shared.base_url.to_string()
        };
        let mut next = format!("{base}{version}/me/adaccounts?");
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = params.get("access_token") {
            q.append_pair("access_token", t);
        }
        if let Some(f) = params.get("fields") {
            q.append_pair("fields", f);
        }
        q.append_pair("limit", &limit.to_string());
        q.append_pair("after", &end.to_string());
        next.push_str(&q.finish());
        if let Some(map) = paging.as_object_mut() {
            map.insert("next".into(), next.into());
        }
    }
    Ok(Reply::ok(json!({"data": data, "paging": paging})))
}

fn ad_account(s: &State, id: &str, params: &Params) -> Result<Reply, Reply> {
    let tok = user_auth(s, params)?;
    match s.accounts.get(id) {
        Some(a) if a.users.contains(&tok.user_id) => Ok(Reply::ok(account_node(id, a))),
        _ => Err(missing_object(id)),
    }
}

fn audience_node(id: &str, a: &super::AudienceRec) -> Value {
    json!({
        "id": id,
        "account_id": a.account.trim_start_matches("act_"),
        "name": a.name,
        "description": a.description,
        "time_created": a.time_created,
    })
}

fn visible<'a>(s: &'a State, tok: &TokenRec, id: &str) -> Option<&'a super::AudienceRec> {
    let a = s.audiences.get(id)?;
    let account = s.accounts.get(&a.account)?;
    account.users.contains(&tok.user_id).then_some(a)
}

fn audiences(s: &State, single: Option<&str>, params: &Params) -> Result<Reply, Reply> {
    let tok = user_auth(s, params)?;
    if let Some(id) = single {
        return match visible(s, &tok, id) {
            Some(a) => Ok(Reply::ok(audience_node(id, a))),
            None => Err(missing_object(id)),
        };
    }
    let ids = params.get("ids").cloned().unwrap_or_default();
    let mut out = serde_json::Map::new();
    for id in ids.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(a) = visible(s, &tok, id) {
            out.insert(id.to_owned(), audience_node(id, a));
        }
    }
    Ok(Reply::ok(Value::Object(out)))
}

fn account_checks(s: &State, tok: &TokenRec, account: &str) -> Result<(), Reply> {
    require_ads_management(tok)?;
    let Some(a) = s
        .accounts
        .get(account)
        .filter(|a| a.users.contains(&tok.user_id))
    else {
        return Err(missing_object(account));
    };
    if a.business.is_none() {
        return Err(err(
            400,
            100,
            Some(1713205),
            "The ad account is not owned by a business; customer file audiences need one",
        ));
    }
    if !a.tos_accepted {
        return Err(err(
            403,
            200,
            Some(1870090),
            "(#200) Custom Audience Terms Not Accepted",
        ));
    }
    Ok(())
}

fn create_audience_call(s: &mut State, account: &str, params: &Params) -> Result<Reply, Reply> {
    let tok = user_auth(s, params)?;
    account_checks(s, &tok, account)?;
    let name = params.get("name").map(|n| n.trim()).unwrap_or("");
    if name.is_empty() {
        return Err(err(400, 100, None, "(#100) The parameter name is required"));
    }
    if params.get("subtype").map(String::as_str) != Some("CUSTOM") {
        return Err(err(400, 100, None, "(#100) subtype must be CUSTOM"));
    }
    match params.get("customer_file_source").map(String::as_str) {
        Some("USER_PROVIDED_ONLY" | "PARTNER_PROVIDED_ONLY" | "BOTH_USER_AND_PARTNER_PROVIDED") => {
        }
        _ => {
            return Err(err(
                400,
                100,
                None,
                "(#100) customer_file_source must be one of USER_PROVIDED_ONLY, PARTNER_PROVIDED_ONLY, BOTH_USER_AND_PARTNER_PROVIDED",
            ));
        }
    }
    let description = params.get("description").cloned().unwrap_or_default();
    if description.chars().count() > 100 {
        return Err(err(
            400,
            100,
            None,
            "(#100) description must be at most 100 characters",
        ));
    }
    let count = s
        .audiences
        .values()
        .filter(|a| a.account == account)
        .count();
    if count >= MAX_AUDIENCES_PER_ACCOUNT {
        return Err(err(
            400,
            2654,
            Some(1870053),
            "You have reached the maximum number of customer file custom audiences (500) for this ad account",
        ));
    }
    let id = create_audience(s, account, name, &description);
    Ok(Reply::ok(json!({ "id": id })))
}

fn upload(
    s: &mut State,
    audience_id: &str,
    params: &Params,
    payload: Option<Result<CheckedPayload, String>>,
    add: bool,
) -> Result<Reply, Reply> {
    let tok = user_auth(s, params)?;
    let account = match visible(s, &tok, audience_id) {
        Some(a) => a.account.clone(),
        None => return Err(missing_object(audience_id)),
    };
    account_checks(s, &tok, &account)?;
    let Some(audience) = s.audiences.get_mut(audience_id) else {
        return Err(missing_object(audience_id));
    };
    if audience.flagged {
        return Err(err(
            400,
            100,
            Some(1713230),
            "This audience has been flagged and uploads are blocked",
        ));
    }
    audience.upload_requests += 1;
    if add && audience.fail_first_upload_803 && audience.batches.is_empty() {
        audience.fail_first_upload_803 = false;
        return Err(err(
            400,
            803,
            None,
            &format!("(#803) Some of the aliases you requested do not exist: {audience_id}"),
        ));
    }
    let checked = payload
        .ok_or_else(|| err(400, 100, None, "(#100) The parameter payload is required"))?
        .map_err(|m| err(400, 100, None, &format!("(#100) {m}")))?;
    let session = match params.get("session") {
        Some(raw) if add => {
            Some(check_session(raw).map_err(|m| err(400, 100, None, &format!("(#100) {m}")))?)
        }
        _ => None,
    };
    let num_received = checked.received;
    let num_invalid = checked.num_invalid_entries;
    let samples = checked.invalid_samples.clone();
    let batch = StoredBatch {
        session_id: session.map(|p| p.session_id),
        batch_seq: session.map(|p| p.batch_seq),
        schema: checked.schema,
        rows: checked.rows,
        num_invalid_entries: num_invalid,
    };
    let (session_id, (num_received, num_invalid)) = match session {
        None => {
            let id = rand::random_range(1u64..i64::MAX as u64);
            let Some(audience) = s.audiences.get_mut(audience_id) else {
                return Err(missing_object(audience_id));
            };
            if add {
                audience.batches.push(batch);
            } else {
                audience.removals.push(batch);
            }
            (id, (num_received, num_invalid))
        }
        Some(p) => {
            let key = (account.clone(), p.session_id);
            let rec = s.sessions.entry(key).or_insert_with(|| SessionRec {
                audience_id: audience_id.to_owned(),
                receipts: Default::default(),
                closed: false,
                estimated_num_total: p.estimated_num_total,
                started_at: tokio::time::Instant::now(),
                expired: false,
                requests: 0,
            });
            rec.requests += 1;
            if rec.audience_id != audience_id {
                return Err(err(
                    400,
                    100,
                    None,
                    "(#100) session_id is already used for another audience of this ad account",
                ));
            }
            if rec.closed {
                // every batch after the last one, a re-sent one too: nothing is stored again
                return Err(err(
                    400,
                    2650,
                    Some(1870159),
                    "The upload session has already finished: it received its last batch",
                ));
            }
            if rec.is_expired() {
                return Err(err(
                    400,
                    2650,
                    Some(1870158),
                    "The upload session has timed out: its first batch is more than 90 minutes old",
                ));
            }
            if rec.receipts.contains_key(&p.batch_seq) {
                // a repeated batch: not counted again; the answer carries the session's totals
                let (n, i) = session_totals(rec);
                return Ok(Reply::ok(json!({
                    "audience_id": audience_id,
                    "session_id": p.session_id.to_string(),
                    "num_received": n,
                    "num_invalid_entries": i,
                    "invalid_entry_samples": {},
                })));
            }
            rec.receipts
                .insert(p.batch_seq, (num_received, num_invalid));
            rec.closed |= p.last_batch_flag;
            if p.estimated_num_total.is_some() {
                rec.estimated_num_total = p.estimated_num_total;
            }
            // like Facebook, a session upload reports the session's running totals
            let totals = session_totals(rec);
            let Some(audience) = s.audiences.get_mut(audience_id) else {
                return Err(missing_object(audience_id));
            };
            audience.batches.push(batch);
            (p.session_id, totals)
        }
    };
    let samples: serde_json::Map<String, Value> = samples
        .into_iter()
        .map(|row| (row, Value::String("invalid value".into())))
        .collect();
    Ok(Reply::ok(json!({
        "audience_id": audience_id,
        "session_id": session_id.to_string(),
        "num_received": num_received,
        "num_invalid_entries": num_invalid,
        "invalid_entry_samples": samples,
    })))
}

/// Rows received and invalid over a session so far.
fn session_totals(rec: &SessionRec) -> (u64, u64) {
    rec.receipts
        .values()
        .fold((0, 0), |(n, i), (bn, bi)| (n + bn, i + bi))
}

/// Revokes a user's permissions: `None` for an injected transient failure, else the
/// answer's status and body.
fn revoke(s: &mut State, user_id: &str) -> Option<(u16, String)> {
    if let Some(left) = s.revoke_failures.get_mut(user_id)
        && *left > 0
    {
        *left -= 1;
        return None;
    }
    if !s.users.contains_key(user_id) {
        return Some((
            400,
            error_body(
                100,
                Some(33),
                &format!("Unsupported delete request. Object with ID '{user_id}' does not exist"),
                false,
            )
            .to_string(),
        ));
    }
    s.revoked.push(user_id.to_owned());
    for t in s.tokens.values_mut().filter(|t| t.user_id == user_id) {
        t.valid = false;
    }
    Some((200, json!({"success": true}).to_string()))
}

fn batch(s: &mut State, params: &Params) -> Result<Reply, Reply> {
    app_auth(params)?;
    let raw = params.get("batch").cloned().unwrap_or_default();
    let Ok(Value::Array(ops)) = serde_json::from_str::<Value>(&raw) else {
        return Err(err(400, 100, None, "(#100) batch must be a JSON array"));
    };
    if ops.is_empty() {
        return Err(err(400, 100, None, "(#100) batch must not be empty"));
    }
    if ops.len() > MAX_BATCH {
        return Err(err(
            400,
            100,
            None,
            "(#100) Too many requests in batch message. Maximum batch size is 50",
        ));
    }
    s.max_batch_seen = s.max_batch_seen.max(ops.len());
    let mut answers = Vec::with_capacity(ops.len());
    for op in ops {
        let method = op.get("method").and_then(Value::as_str).unwrap_or("GET");
        let rel = op
            .get("relative_url")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('/');
        let rel = match rel.split_once('/') {
            Some((v, rest)) if is_version(v) => rest,
            _ => rel,
        };
        let answer = match (method, rel.split_once('/')) {
            ("DELETE", Some((user, "permissions"))) if digits(user) => revoke(s, user),
            _ => Some((
                400,
                error_body(
                    100,
                    None,
                    "(#100) the fake only supports DELETE {user}/permissions in batches",
                    false,
                )
                .to_string(),
            )),
        };
        answers.push(match answer {
            None => Value::Null,
            Some((code, body)) => json!({"code": code, "headers": [], "body": body}),
        });
    }
    Ok(Reply::ok(Value::Array(answers)))
}

#[cfg(test)]
mod form_tests {
    use proptest::prelude::*;

    fn reference(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    #[test]
    fn decodes_as_the_url_crate_does() {
        for body in [
            &b"payload=%7B%22schema%22%3A%5B%22EMAIL%22%5D%7D&session=a+b&x="[..],
            b"a&&b=1&=2&%zz=%4&%C3%A9=%FF",
            b"",
        ] {
            assert_eq!(super::parse_form(body).collect::<Vec<_>>(), reference(body));
        }
    }

    proptest! {
        #[test]
        fn any_body_decodes_as_the_url_crate_does(
            body in proptest::collection::vec(
                prop_oneof![Just(b'%'), Just(b'+'), Just(b'&'), Just(b'='), Just(b'A'), Just(b'f'), Just(b'0'), Just(0xC3u8), Just(0xA9u8), any::<u8>()],
                0..40,
            )
        ) {
            prop_assert_eq!(super::parse_form(&body).collect::<Vec<_>>(), reference(&body));
        }

        /// Long plain runs between escapes, chunk boundaries included (an upload's shape).
        #[test]
        fn payload_like_bodies_decode_as_the_url_crate_does(
            body in "payload=[a-f0-9]{0,70}((%22|%2C|%5B|\\+|%zz|&|=)[a-f0-9]{0,70}){0,12}"
        ) {
            let body = body.as_bytes();
            prop_assert_eq!(super::parse_form(body).collect::<Vec<_>>(), reference(body));
        }
    }
}
