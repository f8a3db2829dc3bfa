//! The OpenAPI 3.1 document (`/openapi.json`). Handler paths are added by
//! [`crate::app::router`] as it registers each route; this adds the document's frame, the
//! bearer scheme and the probes served by the host crate. `openapi.json` at the crate root is
//! the checked-in copy a test compares with (`UPDATE_OPENAPI=1` rewrites it).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's frame.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "facebook-connector-api",
        description = "Profiles (a Facebook login, its encrypted long-lived token and an ad account) for the Narrative marketplace's Facebook delivery. Every route except /tokens/metadata and the probes needs `Authorization: Bearer <marketplace token>`. Errors: {\"error\": {\"code\", \"message\"}}, plus request_id on 5xx.",
    ),
    paths(healthz, readyz, metrics, openapi_json),
    modifiers(&Bearer),
    tags(
        (name = "profiles", description = "The caller's company's profiles"),
        (name = "tokens", description = "Facebook token inspection"),
        (name = "operations", description = "Probes, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Running", body = String, content_type = "text/plain")))]
#[allow(dead_code)] // documentation only: served by facebook_connector_host::ops
fn healthz() {}

/// Readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Database unreachable", body = String, content_type = "text/plain"),
    ))]
#[allow(dead_code)] // documentation only: served by facebook_connector_host::ops
fn readyz() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
#[allow(dead_code)] // documentation only: served by facebook_connector_host::ops
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
#[allow(dead_code)] // documentation only: served by crate::app::router
fn openapi_json() {}
