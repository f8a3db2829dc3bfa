//! Metrics and probes: the process-wide Prometheus recorder, and the `/metrics`, `/healthz`,
//! `/readyz` routes (the worker serves them on `METRICS_ADDR`, the API beside its own routes).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `facebook_connector_upload_duration_seconds` (one batch upload).
pub const UPLOAD_DURATION_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Buckets of `facebook_connector_http_request_duration_seconds` (one API request).
pub const HTTP_DURATION_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Installs the process-wide recorder that `metrics::counter!` and friends write to.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("facebook_connector_upload_duration_seconds".to_owned()),
            &UPLOAD_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("facebook_connector_http_request_duration_seconds".to_owned()),
            &HTTP_DURATION_BUCKETS,
        )?
        .install_recorder()
}

/// Whether the process can serve: the database answers.
pub type ReadinessCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// `/metrics` (Prometheus text), `/healthz` (200 while the process runs) and `/readyz` (200
/// when `ready` says so, 503 otherwise).
pub fn router(metrics: PrometheusHandle, ready: ReadinessCheck) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready().await {
                        (StatusCode::OK, "ready\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
                    }
                }
            }),
        )
}
