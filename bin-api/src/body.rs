//! JSON request bodies: at most [`MAX_BODY_BYTES`] (413 beyond), and a 400 that names the
//! field that was missing or of the wrong type. Messages never quote string values from the
//! body (a token could be one).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::payload_too_large(MAX_BODY_BYTES)
                }
                _ => ApiError::invalid_request("the request body could not be read"),
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, naming the offending field on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "the request body is empty: expected a JSON object",
        ));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::invalid_request(describe(&path, &inner))
    })?;
    de.end().map_err(|e| {
        ApiError::invalid_request(format!(
            "the request body is not valid JSON: trailing characters at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

fn describe(path: &str, error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!(
            "the request body is not valid JSON (line {} column {})",
            error.line(),
            error.column()
        ),
        Category::Data => {
            let message = without_quoted_values(&error.to_string());
            if path == "." || path.is_empty() {
                // e.g. "missing field `token`", "invalid type: ..., expected struct ..."
                message
            } else {
                format!("field `{path}`: {message}")
            }
        }
    }
}

/// serde quotes offending string values (`invalid type: string "…"`); they could be secrets.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    let mut escaped = false;
    for c in message.chars() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
                out.push_str("…\"");
            }
            continue;
        }
        out.push(c);
        if c == '"' {
            in_quotes = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    fn message(body: &str) -> String {
        parse::<Body>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field_and_never_quote_values() {
        assert!(message(r#"{"name": 5, "count": 1}"#).contains("`name`"));
        assert!(message(r#"{"count": 1}"#).contains("missing field `name`"));
        let m = message(r#"{"name": "x", "count": "EAAF-secret"}"#);
        assert!(m.contains("`count`"), "{m}");
        assert!(!m.contains("EAAF-secret"), "{m}");
        assert!(message("{").contains("not valid JSON"));
        assert!(message("[1]").contains("JSON object"));
        assert!(message("  ").contains("empty"));
        assert!(message(r#"{"name": "x", "count": 1} x"#).contains("trailing"));
    }
}
