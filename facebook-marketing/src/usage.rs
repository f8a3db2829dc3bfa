//! Rate-limit signals (`X-App-Usage`, `X-Business-Use-Case-Usage`) and the client-side
//! limiter that slows calls down as usage approaches 100%.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::LimiterConfig;

/// Header with the app-level usage percentages.
pub const APP_USAGE_HEADER: &str = "x-app-usage";
/// Header with the per-business usage percentages and wait hints.
pub const BUC_USAGE_HEADER: &str = "x-business-use-case-usage";

/// What one response said about rate limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The highest usage percentage reported (any metric, any business).
    pub max_percent: Option<u32>,
    /// The longest `estimated_time_to_regain_access` reported (given in minutes).
    pub regain_access: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Percentages {
    call_count: Option<f64>,
    total_cputime: Option<f64>,
    total_time: Option<f64>,
    estimated_time_to_regain_access: Option<f64>,
}

impl Percentages {
    fn max(&self) -> Option<u32> {
        [self.call_count, self.total_cputime, self.total_time]
            .into_iter()
            .flatten()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v.min(1000.0).round() as u32)
            .max()
    }
}

/// Parses the usage headers of a response; malformed headers are ignored.
pub fn parse_usage(headers: &HeaderMap) -> Usage {
    let mut usage = Usage::default();
    let mut bump = |p: Option<u32>| {
        if let Some(p) = p {
            usage.max_percent = Some(usage.max_percent.map_or(p, |m| m.max(p)));
        }
    };
    if let Some(app) = headers
        .get(APP_USAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Percentages>(v).ok())
    {
        bump(app.max());
    }
    let mut regain: Option<Duration> = None;
    if let Some(buc) = headers
        .get(BUC_USAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<HashMap<String, Vec<Percentages>>>(v).ok())
    {
        for entry in buc.values().flatten() {
            bump(entry.max());
            if let Some(minutes) = entry.estimated_time_to_regain_access
                && minutes.is_finite()
                && minutes > 0.0
            {
                let wait = Duration::from_secs_f64(minutes.min(24.0 * 60.0) * 60.0);
                regain = Some(regain.map_or(wait, |r| r.max(wait)));
            }
        }
    }
    usage.regain_access = regain;
    usage
}

#[derive(Debug, Default)]
struct State {
    percent: u32,
    seen_at: Option<Instant>,
    blocked_until: Option<Instant>,
}

/// Remembers the latest usage report and tells how long to wait before the next call.
#[derive(Debug)]
pub(crate) struct Limiter {
    cfg: LimiterConfig,
    state: Mutex<State>,
}

impl Limiter {
    pub(crate) fn new(cfg: LimiterConfig) -> Self {
        Limiter {
            cfg,
            state: Mutex::new(State::default()),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock only means another task panicked mid-update of plain numbers.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Records what a response said.
    pub(crate) fn observe(&self, usage: &Usage) {
        let now = Instant::now();
        self.with_state(|s| {
            if let Some(p) = usage.max_percent {
                s.percent = p;
                s.seen_at = Some(now);
            }
        });
    }

    /// No call before `now + wait` (after a throttling error with a wait hint).
    pub(crate) fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        self.with_state(|s| {
            s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
        });
    }

    /// How long to wait before the next call.
    pub(crate) fn delay(&self) -> Duration {
        let now = Instant::now();
        self.with_state(|s| {
            let blocked = s
                .blocked_until
                .map(|b| b.saturating_duration_since(now))
                .unwrap_or_default();
            let fresh = s
                .seen_at
                .is_some_and(|t| now.saturating_duration_since(t) <= self.cfg.usage_ttl);
            let pacing = if fresh {
                pacing_delay(&self.cfg, s.percent)
            } else {
                Duration::ZERO
            };
            blocked.max(pacing)
        })
    }
}

/// The wait for a usage percentage: none below `slow_down_from`, then growing quadratically to
/// `max_delay` at 100%.
pub(crate) fn pacing_delay(cfg: &LimiterConfig, percent: u32) -> Duration {
    let from = u32::from(cfg.slow_down_from.min(99));
    if percent < from {
        return Duration::ZERO;
    }
    let span = f64::from(100 - from);
    let x = (f64::from(percent.min(100) - from) / span).clamp(0.0, 1.0);
    cfg.max_delay.mul_f64(x * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn usage_headers_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            APP_USAGE_HEADER,
            HeaderValue::from_static(r#"{"call_count":28,"total_time":25,"total_cputime":91}"#),
        );
        headers.insert(
            BUC_USAGE_HEADER,
            HeaderValue::from_static(
                r#"{"123":[{"type":"CUSTOM_AUDIENCE","call_count":99,"total_cputime":5,"total_time":5,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        let usage = parse_usage(&headers);
        assert_eq!(usage.max_percent, Some(99));
        assert_eq!(usage.regain_access, Some(Duration::from_secs(180)));

        let mut bad = HeaderMap::new();
        bad.insert(APP_USAGE_HEADER, HeaderValue::from_static("not json"));
        assert_eq!(parse_usage(&bad), Usage::default());
    }

    #[test]
    fn pacing_grows_towards_full_usage() {
        let cfg = LimiterConfig {
            slow_down_from: 80,
            max_delay: Duration::from_secs(10),
            usage_ttl: Duration::from_secs(60),
        };
        assert_eq!(pacing_delay(&cfg, 50), Duration::ZERO);
        assert_eq!(pacing_delay(&cfg, 80), Duration::ZERO);
        let mid = pacing_delay(&cfg, 90);
        assert!(mid > Duration::ZERO && mid < Duration::from_secs(10));
        assert_eq!(pacing_delay(&cfg, 100), Duration::from_secs(10));
        assert_eq!(pacing_delay(&cfg, 250), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_waits_when_blocked_and_forgets_old_usage() {
        let limiter = Limiter::new(LimiterConfig {
            slow_down_from: 80,
            max_delay: Duration::from_secs(10),
            usage_ttl: Duration::from_secs(60),
        });
        assert_eq!(limiter.delay(), Duration::ZERO);
        limiter.observe(&Usage {
            max_percent: Some(100),
            regain_access: None,
        });
        assert_eq!(limiter.delay(), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(limiter.delay(), Duration::ZERO);
        limiter.block_for(Duration::from_secs(30));
        assert_eq!(limiter.delay(), Duration::from_secs(30));
    }
}
