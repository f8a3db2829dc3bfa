//! Keeping secrets out of texts that reach errors and logs.

use url::Url;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not scrubbed: replacing a short string (an empty app id, a
/// two-letter word) would garble the text without protecting anything.
pub const MIN_SECRET_LEN: usize = 8;

/// `text` with every occurrence of each secret (of at least [`MIN_SECRET_LEN`] bytes)
/// replaced by [`REDACTED`]. Used on upstream messages that may quote the request.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// Whether `text` contains one of the secrets (of at least [`MIN_SECRET_LEN`] bytes): for
/// deciding that a parser's message, which may quote its input, must be dropped.
pub fn contains_secret(text: &str, secrets: &[&str]) -> bool {
    secrets
        .iter()
        .any(|s| s.len() >= MIN_SECRET_LEN && text.contains(s))
}

/// A URL for logs and `Debug`: scheme, host, port and path only (no user, password, query or
/// fragment, which may carry credentials or a presigned signature).
pub fn redacted_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced() {
        let text = "bad token EAABsecret123 given, EAABsecret123 again, short ab";
        let out = scrub(text, &["EAABsecret123", "ab", ""]);
        assert_eq!(
            out,
            "bad token [redacted] given, [redacted] again, short ab"
        );
        assert!(contains_secret(text, &["EAABsecret123"]));
        assert!(!contains_secret(text, &["ab"]));
    }

    #[test]
    fn urls_lose_credentials_and_queries() {
        let url = Url::parse("https://user:pw-secret@host.example:8443/a/b?sig=abc&token=xyz#frag")
            .unwrap();
        assert_eq!(redacted_url(&url), "https://host.example:8443/a/b");
    }
}
