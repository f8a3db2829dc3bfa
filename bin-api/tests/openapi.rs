//! `/openapi.json` is generated from the handlers' types; `openapi.json` at the crate root is
//! the checked-in copy. A route or shape that changes without the copy being updated fails
//! here: review the difference, then run
//! `UPDATE_OPENAPI=1 cargo test -p facebook-connector-api --test openapi`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn generated() -> String {
    let mut doc = facebook_connector_api::app::openapi_document();
    doc.push('\n');
    doc
}

#[test]
fn the_document_matches_the_checked_in_copy() {
    let doc = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in(), &doc).unwrap();
        return;
    }
    let copy = std::fs::read_to_string(checked_in()).unwrap_or_default();
    if copy != doc {
        let first = copy
            .lines()
            .zip(doc.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(copy.lines().count().min(doc.lines().count()));
        panic!(
            "the OpenAPI document changed (first difference at line {}): review it, then run \
             UPDATE_OPENAPI=1 cargo test -p facebook-connector-api --test openapi",
            first + 1
        );
    }
}

#[test]
fn every_route_and_the_profile_shape_are_documented() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/tokens/metadata", "post"),
        ("/profiles", "get"),
        ("/profiles", "post"),
        ("/profiles/{id}", "get"),
        ("/profiles/{id}/enable", "post"),
        ("/profiles/{id}/archive", "post"),
        ("/profiles/{id}/reauthorize", "post"),
        ("/profiles/disconnect", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let profile = &doc["components"]["schemas"]["ProfileDto"]["properties"];
    for field in [
        "id",
        "name",
        "description",
        "status",
        "ad_account",
        "audience",
        "company_id",
        "created_at",
        "updated_at",
        "token",
        "delivery_state",
    ] {
        assert!(profile[field].is_object(), "ProfileDto.{field}");
    }
    let token = &doc["components"]["schemas"]["ProfileTokenDto"]["properties"];
    for field in [
        "is_valid",
        "issued_at",
        "expires_at",
        "data_access_expires_at",
        "expires_in_days",
        "scopes",
        "user",
    ] {
        assert!(token[field].is_object(), "ProfileTokenDto.{field}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
