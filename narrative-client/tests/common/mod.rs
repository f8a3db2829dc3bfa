//! Helpers shared by the client's HTTP test files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use wiremock::Request;

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures every log record (all levels, no colours) of this thread while the guard lives.
pub fn capture_logs() -> (Captured, DefaultGuard) {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The grant types the token endpoint received, in order.
pub fn grant_types(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}
