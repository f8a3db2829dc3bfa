//! The router: routes, the OpenAPI document, and the middleware every request passes through
//! (request id, body size, timeout, panics, CORS, access log, metrics).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use facebook_connector_core::profiles::ProfileService;
use facebook_connector_host::ops::{self, ReadinessCheck};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthCache;
use crate::body::MAX_BODY_BYTES;
use crate::dto::{ErrorBody, ErrorDetail};
use crate::error::{ApiError, ErrorInfo};
use crate::openapi::ApiDoc;
use crate::routes;

/// The request id header (accepted when well-formed, generated otherwise, always returned).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The profile logic.
    pub service: ProfileService,
    /// Who bearer tokens belong to, for a short while.
    pub auth: Arc<AuthCache>,
}

/// Which origins may call the API from a browser (`CORS_ALLOWED_ORIGINS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin, without credentials.
    Any,
    /// Exactly these origins.
    List(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// Parses `*` or a comma-separated list of origins (`https://app.example.com`).
    pub fn parse(value: &str) -> Result<CorsOrigins, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let parsed = url::Url::parse(origin).map_err(|e| format!("{origin}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!("{origin}: expected http(s)://host[:port]"));
            }
            let header = HeaderValue::from_str(origin.trim_end_matches('/'))
                .map_err(|e| format!("{origin}: {e}"))?;
            origins.push(header);
        }
        if origins.is_empty() {
            return Err("expected `*` or a comma-separated list of origins".to_owned());
        }
        Ok(CorsOrigins::List(origins))
    }
}

/// The router's knobs.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Longest a request may take before a 504.
    pub request_timeout: Duration,
    /// Allowed browser origins.
    pub cors: CorsOrigins,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            request_timeout: Duration::from_secs(30),
            cors: CorsOrigins::Any,
        }
    }
}

/// The routes and their OpenAPI document, registered together (a route cannot be served
/// without its document entry).
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::token_metadata))
        .routes(routes!(routes::list_profiles, routes::create_profile))
        .routes(routes!(routes::disconnect))
        .routes(routes!(routes::get_profile))
        .routes(routes!(routes::enable_profile))
        .routes(routes!(routes::archive_profile))
        .routes(routes!(routes::reauthorize_profile))
        .split_for_parts()
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_document() -> String {
    let (_, doc) = routes();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// The whole HTTP API: the routes, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`, and
/// the middleware.
pub fn router(
    state: AppState,
    options: &AppOptions,
    metrics: PrometheusHandle,
    ready: ReadinessCheck,
) -> Router {
    let (api, doc) = routes();
    let document = Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    let api = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        )
        .with_state(state);
    let observe = Arc::new(Observe {
        timeout: options.request_timeout,
    });
    api.merge(ops::router(metrics, ready))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept this method",
            )
        })
        // bodies sent without a Content-Length are cut off here (the JSON extractor answers 413)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(middleware::from_fn_with_state(observe, observe_request))
        .layer(cors(&options.cors))
}

fn cors(origins: &CorsOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID.clone(),
        ])
        .expose_headers([REQUEST_ID.clone()])
        .max_age(Duration::from_secs(600));
    match origins {
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(list.iter().cloned())),
    }
}

struct Observe {
    timeout: Duration,
}

/// The request's id, for handlers and logs.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// An incoming request id is kept when it is 1 to 128 characters of `[A-Za-z0-9._:-]`.
fn incoming_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| value.to_owned())
}

/// Request id, body-size check, timeout, then after the handler: the request id on 5xx error
/// bodies and in the `x-request-id` header, the metrics, and one access log line (method,
/// route template, status, duration, request id; never a body, a query string or a header
/// value).
async fn observe_request(
    State(observe): State<Arc<Observe>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = tokio::time::Instant::now();
    let request_id =
        incoming_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = match buffered(request).await {
        Ok(request) => match tokio::time::timeout(observe.timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout().into_response(),
        },
        Err(error) => error.into_response(),
    };
    let status = response.status();
    let info = response.extensions().get::<ErrorInfo>().cloned();
    if status.is_server_error()
        && let Some(info) = &info
    {
        let body = ErrorBody {
            error: ErrorDetail {
                code: info.code.to_owned(),
                message: info.message.clone(),
                request_id: Some(request_id.clone()),
            },
            request_id: Some(request_id.clone()),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(bytes);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let elapsed = started.elapsed();
    let status_label = status.as_u16().to_string();
    metrics::counter!(
        "facebook_connector_http_requests_total",
        "route" => route.clone(),
        "status" => status_label
    )
    .increment(1);
    metrics::histogram!(
        "facebook_connector_http_request_duration_seconds",
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let code = info.as_ref().map(|i| i.code);
    let error = info.as_ref().and_then(|i| i.detail.as_deref());
    if status.is_server_error() {
        tracing::error!(
            target: "facebook_connector_api::access",
            request_id = %request_id, method = %method, route = %route,
            status = status.as_u16(), duration_ms, code, error,
            "request failed"
        );
    } else {
        tracing::info!(
            target: "facebook_connector_api::access",
            request_id = %request_id, method = %method, route = %route,
            status = status.as_u16(), duration_ms, code, error,
            "request"
        );
    }
    response
}

/// How much of an oversized body is read (and dropped) before answering 413, so that clients
/// still writing it get the answer instead of a reset connection.
const DRAIN_BYTES: usize = 1024 * 1024;

/// The request with its body read into memory: at most [`MAX_BODY_BYTES`], else 413 (after
/// draining up to [`DRAIN_BYTES`]).
async fn buffered(request: Request) -> Result<Request, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        let _ = axum::body::to_bytes(body, DRAIN_BYTES).await;
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    if declared == Some(0) {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    let mut body = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut total = 0_usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::invalid_request(
                "the request body could not be read",
            ));
        };
        total += chunk.len();
        if total > DRAIN_BYTES {
            break;
        }
        if total <= MAX_BODY_BYTES {
            bytes.extend_from_slice(&chunk);
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
