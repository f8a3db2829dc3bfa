//! The HTTP client setup both clients share: rustls with the *ring* provider and the
//! platform's certificate verifier. The workspace builds reqwest with `rustls-no-provider`
//! (no aws-lc in any build); the provider is given per client, and no process-wide default
//! provider is installed.

use std::sync::Arc;

/// rustls with the ring provider, safe default protocol versions, the platform's verifier,
/// and ALPN for HTTP/2 and HTTP/1.1.
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A `reqwest` client builder with [`tls_config`]; the caller adds its timeouts, user agent
/// and redirect policy.
pub fn client_builder() -> Result<reqwest::ClientBuilder, rustls::Error> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls_config()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_builds_without_a_process_wide_provider() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let client = client_builder().unwrap().build();
        assert!(client.is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
