//! The fake's HTTP handlers.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use facebook_connector_core::domain::{ProfileId, ProfileStatus};
use facebook_connector_core::ports::MarketplaceProfile;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{AccessToken, Blob, RecordedCall, Shared, State as FakeState, lock, rfc3339};

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/v1/app/commands/delivery", get(legacy_feed))
        .route(
            "/v1/app/commands/delivery/{revision}/files",
            get(legacy_files),
        )
        .route(
            "/v1/app/commands/delivery/{revision}/download/{file}",
            post(legacy_download),
        )
        .route("/v2/app/events", get(event_feed))
        .route("/connections/{id}", get(connection))
        .route(
            "/datasets/{dataset}/snapshots/{snapshot}/files-added",
            get(files_added),
        )
        .route(
            "/datasets/{dataset}/snapshots/{snapshot}/files-added/{file}/download",
            post(snapshot_download),
        )
        .route("/datasets/{dataset}/find-files", get(find_files))
        .route("/presigned/{key}", get(presigned))
        .route("/company-info/whoami", get(company_whoami))
        .route("/installations/whoami", get(installation_whoami))
        .route(
            "/installations/{installation}/profiles",
            get(list_profiles).post(create_profile),
        )
        .route(
            "/installations/{installation}/profiles/{id}",
            get(get_profile).put(update_profile),
        )
        .route(
            "/installations/{installation}/profiles/{id}/{action}",
            post(transition_profile),
        )
        .route("/apps/events", post(status_events))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// Records the call, then applies injected failures and delays.
async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let (failure, delay) = {
        let mut s = lock(&state);
        s.calls.push(RecordedCall {
            method: request.method().to_string(),
            path: path.clone(),
            query: request.uri().query().unwrap_or_default().to_owned(),
        });
        let failure = s
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && path.starts_with(&f.path_prefix))
            .map(|f| {
                f.remaining -= 1;
                f.status
            });
        let delay = s
            .delays
            .iter_mut()
            .find(|d| d.remaining > 0 && path.starts_with(&d.path_prefix))
            .map(|d| {
                d.remaining -= 1;
                d.delay
            });
        (failure, delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(
            status,
            "injected",
            "failure injected by the fake marketplace",
        );
    }
    next.run(request).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn app_authorized(state: &FakeState, headers: &HeaderMap) -> bool {
    bearer(headers)
        .and_then(|token| state.access_tokens.get(token))
        .is_some_and(|t| !t.revoked && t.expires_at > Instant::now())
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid or expired token",
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(input: &[u8]) -> String {
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = lock(&state).token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = lock(&state);
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    s.grants.push(grant.clone());
    let expected = format!(
        "Basic {}",
        base64(format!("{}:{}", s.client_id, s.client_secret).as_bytes())
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad client credentials",
        );
    }
    match grant.as_str() {
        "client_credentials" => {}
        "refresh_token" => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            match s.refresh_tokens.remove(&presented) {
                Some(expires_at) if expires_at > Instant::now() => {}
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "unknown refresh token",
                    );
                }
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "unsupported grant",
            );
        }
    }
    let access = format!("fake-access-{}", uuid::Uuid::new_v4().simple());
    let refresh = format!("fake-refresh-{}", uuid::Uuid::new_v4().simple());
    let now = Instant::now();
    let (access_ttl, refresh_ttl) = (s.access_ttl, s.refresh_ttl);
    s.access_tokens.insert(
        access.clone(),
        AccessToken {
            expires_at: now + access_ttl,
            revoked: false,
        },
    );
    s.refresh_tokens.insert(refresh.clone(), now + refresh_ttl);
    s.issued_refresh_tokens.push(refresh.clone());
    Json(json!({
        "access_token": access,
        "access_token_expires_in": access_ttl.as_secs(),
        "refresh_token": refresh,
        "refresh_token_expires_in": refresh_ttl.as_secs(),
    }))
    .into_response()
}

fn feed_page(feed: &[(u64, Value)], params: &HashMap<String, String>) -> Response {
    let from: u64 = params
        .get("from_revision")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: usize = params
        .get("max_results")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let records: Vec<&(u64, Value)> = feed.iter().filter(|(r, _)| *r >= from).take(max).collect();
    let next = records.last().map_or(from, |(r, _)| r + 1);
    Json(json!({
        "records": records.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next_revision": next,
    }))
    .into_response()
}

async fn legacy_feed(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    feed_page(&s.legacy_feed, &q)
}

async fn event_feed(State(state): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    feed_page(&s.event_feed, &q)
}

async fn legacy_files(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(revision): Path<u64>,
) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    let Some(files) = s.legacy_files.get(&revision) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such delivery");
    };
    let listed: Vec<Value> = files
        .iter()
        .map(|(name, bytes)| {
            json!({"company_id": 1, "file": name, "size": bytes.len(),
                   "subscription_id": null, "transaction_batch_id": null,
                   "timestamp": rfc3339(OffsetDateTime::now_utc())})
        })
        .collect();
    Json(listed).into_response()
}

/// Refuses a download of `file` once the marketplace no longer offers it.
fn downloadable(s: &FakeState, file: &str) -> Result<(), Box<Response>> {
    if s.expired_downloads.iter().any(|f| f == file) {
        return Err(Box::new(error(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "expired",
            "the file is no longer available",
        )));
    }
    Ok(())
}

/// The snapshot `snapshot` of `dataset`, unless it is unknown or too old to read.
fn readable_snapshot<'a>(
    s: &'a FakeState,
    dataset: i64,
    snapshot: &str,
) -> Result<&'a super::StoredSnapshot, Box<Response>> {
    let Some(found) = s
        .snapshots
        .iter()
        .find(|x| x.dataset_id == dataset && x.snapshot_id == snapshot)
    else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such snapshot",
        )));
    };
    if found.too_old {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "snapshot is older than 30 days",
        )));
    }
    Ok(found)
}

/// Stores the bytes behind a fresh presigned-style URL.
fn presign(s: &mut FakeState, bytes: Bytes) -> String {
    let key = uuid::Uuid::new_v4().simple().to_string();
    let expires_at = s.url_ttl.map(|ttl| Instant::now() + ttl);
    let expires_unix = OffsetDateTime::now_utc().unix_timestamp()
        + s.url_ttl
            .map_or(3600, |t| i64::try_from(t.as_secs()).unwrap_or(3600));
    s.blobs.insert(key.clone(), Blob { bytes, expires_at });
    format!(
        "{}presigned/{key}?expires={expires_unix}&signature=fake-{}",
        s.base_url,
        uuid::Uuid::new_v4().simple()
    )
}

async fn legacy_download(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((revision, file)): Path<(u64, String)>,
) -> Response {
    let mut s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    if let Err(response) = downloadable(&s, &file) {
        return *response;
    }
    let bytes = s
        .legacy_files
        .get(&revision)
        .and_then(|files| files.iter().find(|(name, _)| *name == file))
        .map(|(_, bytes)| bytes.clone());
    match bytes {
        Some(bytes) => Json(Value::String(presign(&mut s, bytes))).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

async fn connection(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    match s.connections.get(&id) {
        Some(connection) => Json(connection.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such connection"),
    }
}

async fn files_added(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((dataset, snapshot)): Path<(i64, String)>,
) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    let found = match readable_snapshot(&s, dataset, &snapshot) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let names: Vec<Value> = found
        .files
        .iter()
        .map(|(n, _)| json!({"name": n}))
        .collect();
    Json(names).into_response()
}

async fn snapshot_download(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((dataset, snapshot, file)): Path<(i64, String, String)>,
) -> Response {
    let mut s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    if let Err(response) = downloadable(&s, &file) {
        return *response;
    }
    let found = match readable_snapshot(&s, dataset, &snapshot) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let Some(bytes) = found
        .files
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, b)| b.clone())
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let url = presign(&mut s, bytes);
    Json(json!({"download_url": url})).into_response()
}

async fn find_files(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(dataset): Path<i64>,
    Query(q): Params,
) -> Response {
    let s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, s.find_files_page_cap.max(1));
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let gte = q.get("timestamp.gte").and_then(|v| {
        OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
    });
    let mut snapshots: Vec<_> = s
        .snapshots
        .iter()
        .filter(|x| x.dataset_id == dataset)
        .filter(|x| gte.is_none_or(|gte| x.timestamp >= gte))
        .collect();
    snapshots.sort_by(|a, b| (a.timestamp, &a.snapshot_id).cmp(&(b.timestamp, &b.snapshot_id)));
    let start = match q.get("from_snapshot_id") {
        Some(from) => match snapshots.iter().position(|x| &x.snapshot_id == from) {
            Some(position) => position + offset,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "unknown from_snapshot_id",
                );
            }
        },
        None => offset,
    };
    let page: Vec<Value> = snapshots
        .iter()
        .skip(start)
        .take(per_page)
        .map(|x| {
            json!({
                "files": x.files.iter().map(|(n, b)| json!({"path": n, "size": b.len()})).collect::<Vec<_>>(),
                "snapshot_id": x.snapshot_id,
                "timestamp": rfc3339(x.timestamp),
                "is_downloadable": x.downloadable,
            })
        })
        .collect();
    let next = snapshots.get(start + per_page);
    Json(json!({
        "files_per_snapshot": page,
        "has_next": next.is_some(),
        "next_snapshot": next.map(|x| x.snapshot_id.clone()),
    }))
    .into_response()
}

async fn presigned(State(state): State<Shared>, Path(key): Path<String>) -> Response {
    let s = lock(&state);
    let Some(blob) = s.blobs.get(&key) else {
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    if blob.expires_at.is_some_and(|at| at <= Instant::now()) {
        return (StatusCode::FORBIDDEN, "Request has expired").into_response();
    }
    let bytes = blob.bytes.clone();
    let announced = if s.truncate_downloads {
        bytes.len() + 1
    } else {
        bytes.len()
    };
    let body = Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&announced.to_string()).unwrap(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn customer<'a>(s: &'a mut FakeState, headers: &HeaderMap) -> Option<&'a mut super::Customer> {
    let token = bearer(headers)?.to_owned();
    s.customers.get_mut(&token)
}

fn installation_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn company_whoami(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = lock(&state);
    match customer(&mut s, &headers) {
        Some(c) => Json(json!({"id": c.company_id, "name": format!("company {}", c.company_id)}))
            .into_response(),
        None => unauthorized(),
    }
}

async fn installation_whoami(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = lock(&state);
    match customer(&mut s, &headers) {
        Some(c) => Json(json!({"id": c.installation_id})).into_response(),
        None => unauthorized(),
    }
}

/// The customer's profiles when `installation` is theirs.
fn installation_profiles<'a>(
    s: &'a mut FakeState,
    headers: &HeaderMap,
    installation: &str,
) -> Result<&'a mut Vec<MarketplaceProfile>, Box<Response>> {
    let Some(c) = customer(s, headers) else {
        return Err(Box::new(unauthorized()));
    };
    if installation_text(&c.installation_id) != installation {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such installation",
        )));
    }
    Ok(&mut c.profiles)
}

/// The customer's profile `id` when `installation` is theirs.
fn installation_profile<'a>(
    s: &'a mut FakeState,
    headers: &HeaderMap,
    installation: &str,
    id: &str,
) -> Result<&'a mut MarketplaceProfile, Box<Response>> {
    installation_profiles(s, headers, installation)?
        .iter_mut()
        .find(|p| p.id.to_string() == id)
        .ok_or_else(|| Box::new(error(StatusCode::NOT_FOUND, "not_found", "no such profile")))
}

async fn list_profiles(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(installation): Path<String>,
) -> Response {
    let mut s = lock(&state);
    match installation_profiles(&mut s, &headers, &installation) {
        Ok(profiles) => Json(json!({"records": profiles})).into_response(),
        Err(response) => *response,
    }
}

#[derive(serde::Deserialize)]
struct ProfileBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

async fn create_profile(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(installation): Path<String>,
    Json(body): Json<ProfileBody>,
) -> Response {
    let mut s = lock(&state);
    match installation_profiles(&mut s, &headers, &installation) {
        Ok(profiles) => {
            let profile = MarketplaceProfile {
                id: ProfileId(uuid::Uuid::new_v4()),
                name: body.name,
                description: body.description,
                status: ProfileStatus::Disabled,
            };
            profiles.push(profile.clone());
            (StatusCode::CREATED, Json(profile)).into_response()
        }
        Err(response) => *response,
    }
}

async fn get_profile(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((installation, id)): Path<(String, String)>,
) -> Response {
    let mut s = lock(&state);
    match installation_profile(&mut s, &headers, &installation, &id) {
        Ok(p) => Json(p.clone()).into_response(),
        Err(response) => *response,
    }
}

async fn update_profile(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((installation, id)): Path<(String, String)>,
    Json(body): Json<ProfileBody>,
) -> Response {
    let mut s = lock(&state);
    match installation_profile(&mut s, &headers, &installation, &id) {
        Ok(p) => {
            p.name = body.name;
            p.description = body.description;
            Json(p.clone()).into_response()
        }
        Err(response) => *response,
    }
}

async fn transition_profile(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((installation, id, action)): Path<(String, String, String)>,
) -> Response {
    let status = match action.as_str() {
        "archive" => ProfileStatus::Archived,
        "enable" => ProfileStatus::Enabled,
        "disable" => ProfileStatus::Disabled,
        _ => return error(StatusCode::NOT_FOUND, "not_found", "no such action"),
    };
    let mut s = lock(&state);
    match installation_profile(&mut s, &headers, &installation, &id) {
        Ok(p) => {
            p.status = status;
            Json(p.clone()).into_response()
        }
        Err(response) => *response,
    }
}

async fn status_events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    if !app_authorized(&s, &headers) {
        return unauthorized();
    }
    let keys: Vec<Value> = body
        .get("events")
        .and_then(Value::as_array)
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e.pointer("/idempotencyKey/value").cloned())
                .collect()
        })
        .unwrap_or_default();
    s.status_events.push(body);
    Json(json!({"enqueued": keys, "rejected": []})).into_response()
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
