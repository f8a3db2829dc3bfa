//! Rate-limit signals (`X-App-Usage`, `X-Business-Use-Case-Usage`) and the client-side
//! limiter that slows calls down as usage approaches 100%.
//!
//! The limiter has two scopes. `X-App-Usage` and app-level throttles (codes 4 and 341) concern
//! the whole app and slow every call. `X-Business-Use-Case-Usage` and the other throttles
//! concern one business (or user), so they only slow the calls made with the same user token:
//! one customer hitting its custom-audience quota does not hold back the others. Tokens are
//! never stored: a scope is a keyed hash of the token, with a key drawn per process.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::LimiterConfig;

/// Header with the app-level usage percentages.
pub const APP_USAGE_HEADER: &str = "x-app-usage";
/// Header with the per-business usage percentages and wait hints.
pub const BUC_USAGE_HEADER: &str = "x-business-use-case-usage";

/// Per-token scopes remembered at most; stale ones are dropped first.
const MAX_SCOPES: usize = 10_000;

/// What one response said about rate limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The highest usage percentage of `X-App-Usage` (any metric).
    pub app_percent: Option<u32>,
    /// The highest usage percentage of `X-Business-Use-Case-Usage` (any metric, any business).
    pub business_percent: Option<u32>,
    /// The longest `estimated_time_to_regain_access` reported (given in minutes).
    pub regain_access: Option<Duration>,
}

impl Usage {
    /// The highest percentage of either header.
    pub fn max_percent(&self) -> Option<u32> {
        self.app_percent.max(self.business_percent)
    }
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

fn bump(slot: &mut Option<u32>, p: Option<u32>) {
    if let Some(p) = p {
        *slot = Some(slot.map_or(p, |m| m.max(p)));
    }
}

/// Parses the usage headers of a response; malformed headers are ignored.
pub fn parse_usage(headers: &HeaderMap) -> Usage {
    let mut usage = Usage::default();
    if let Some(app) = headers
        .get(APP_USAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Percentages>(v).ok())
    {
        bump(&mut usage.app_percent, app.max());
    }
    let mut regain: Option<Duration> = None;
    if let Some(buc) = headers
        .get(BUC_USAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<HashMap<String, Vec<Percentages>>>(v).ok())
    {
        for entry in buc.values().flatten() {
            bump(&mut usage.business_percent, entry.max());
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

/// Whose budget a call spends: the app's only, or also one user token's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// App-token and anonymous calls.
    App,
    /// Calls with one user token (a keyed hash of it).
    Token(u64),
}

#[derive(Debug, Default)]
struct State {
    percent: u32,
    seen_at: Option<Instant>,
    blocked_until: Option<Instant>,
}

impl State {
    fn delay(&self, cfg: &LimiterConfig, now: Instant) -> Duration {
        let blocked = self
            .blocked_until
            .map(|b| b.saturating_duration_since(now))
            .unwrap_or_default();
        blocked.max(self.pacing(cfg, now))
    }

    fn pacing(&self, cfg: &LimiterConfig, now: Instant) -> Duration {
        let fresh = self
            .seen_at
            .is_some_and(|t| now.saturating_duration_since(t) <= cfg.usage_ttl);
        if fresh {
            pacing_delay(cfg, self.percent)
        } else {
            Duration::ZERO
        }
    }

    fn observe(&mut self, percent: u32, now: Instant) {
        self.percent = percent;
        self.seen_at = Some(now);
    }

    fn block(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    fn is_stale(&self, cfg: &LimiterConfig, now: Instant) -> bool {
        self.delay(cfg, now).is_zero()
            && self
                .seen_at
                .is_none_or(|t| now.saturating_duration_since(t) > cfg.usage_ttl)
    }
}

#[derive(Debug, Default)]
struct Scopes {
    app: State,
    tokens: HashMap<u64, State>,
}

/// Remembers the latest usage reports and tells how long to wait before the next call.
#[derive(Debug)]
pub(crate) struct Limiter {
    cfg: LimiterConfig,
    keys: RandomState,
    state: Mutex<Scopes>,
}

impl Limiter {
    pub(crate) fn new(cfg: LimiterConfig) -> Self {
        Limiter {
            cfg,
            keys: RandomState::new(),
            state: Mutex::new(Scopes::default()),
        }
    }

    /// The scope of calls made with `token`.
    pub(crate) fn scope_of(&self, token: &SecretString) -> Scope {
        Scope::Token(self.keys.hash_one(token.expose_secret()))
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut Scopes) -> R) -> R {
        // A poisoned lock only means another task panicked mid-update of plain numbers.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn token_state<'a>(&self, s: &'a mut Scopes, key: u64, now: Instant) -> &'a mut State {
        if s.tokens.len() >= MAX_SCOPES && !s.tokens.contains_key(&key) {
            let cfg = &self.cfg;
            s.tokens.retain(|_, st| !st.is_stale(cfg, now));
            if s.tokens.len() >= MAX_SCOPES {
                // everything is fresh: forget the scope seen longest ago
                if let Some(oldest) = s
                    .tokens
                    .iter()
                    .min_by_key(|(_, st)| st.seen_at)
                    .map(|(k, _)| *k)
                {
                    s.tokens.remove(&oldest);
                }
            }
        }
        s.tokens.entry(key).or_default()
    }

    /// Records what a response to a call in `scope` said.
    pub(crate) fn observe(&self, scope: Scope, usage: &Usage) {
        let now = Instant::now();
        self.with_state(|s| {
            if let Some(p) = usage.app_percent {
                s.app.observe(p, now);
            }
            if let Some(p) = usage.business_percent {
                match scope {
                    // without a user token there is no business to pin it on
                    Scope::App => {}
                    Scope::Token(key) => self.token_state(s, key, now).observe(p, now),
                }
            }
        });
    }

    /// No call in `scope` before `now + wait` (after a throttling error with a wait hint);
    /// [`Scope::App`] holds back every call.
    pub(crate) fn block_for(&self, scope: Scope, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        self.with_state(|s| match scope {
            Scope::App => s.app.block(until),
            Scope::Token(key) => self.token_state(s, key, now).block(until),
        });
    }

    /// How long to wait before the next call in `scope`.
    pub(crate) fn delay(&self, scope: Scope) -> Duration {
        let now = Instant::now();
        self.with_state(|s| {
            let app = s.app.delay(&self.cfg, now);
            let token = match scope {
                Scope::App => Duration::ZERO,
                Scope::Token(key) => s
                    .tokens
                    .get(&key)
                    .map(|st| st.delay(&self.cfg, now))
                    .unwrap_or_default(),
            };
            app.max(token)
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
        assert_eq!(usage.app_percent, Some(91));
        assert_eq!(usage.business_percent, Some(99));
        assert_eq!(usage.max_percent(), Some(99));
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
        assert!(pacing_delay(&cfg, 95) > mid, "slower the closer to 100%");
        assert_eq!(pacing_delay(&cfg, 100), Duration::from_secs(10));
        assert_eq!(pacing_delay(&cfg, 250), Duration::from_secs(10));
    }

    fn limiter() -> Limiter {
        Limiter::new(LimiterConfig {
            slow_down_from: 80,
            max_delay: Duration::from_secs(10),
            usage_ttl: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_waits_when_blocked_and_forgets_old_usage() {
        let limiter = limiter();
        assert_eq!(limiter.delay(Scope::App), Duration::ZERO);
        limiter.observe(
            Scope::App,
            &Usage {
                app_percent: Some(100),
                ..Usage::default()
            },
        );
        assert_eq!(limiter.delay(Scope::App), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(limiter.delay(Scope::App), Duration::ZERO);
        limiter.block_for(Scope::App, Duration::from_secs(30));
        assert_eq!(limiter.delay(Scope::App), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn business_usage_and_throttles_only_hold_back_the_same_token() {
        let limiter = limiter();
        let a = limiter.scope_of(&SecretString::from("token-a".to_owned()));
        let b = limiter.scope_of(&SecretString::from("token-b".to_owned()));
        assert_ne!(a, b);
        assert_eq!(
            a,
            limiter.scope_of(&SecretString::from("token-a".to_owned()))
        );
        limiter.observe(
            a,
            &Usage {
                business_percent: Some(100),
                ..Usage::default()
            },
        );
        limiter.block_for(a, Duration::from_secs(300));
        assert_eq!(limiter.delay(a), Duration::from_secs(300));
        assert_eq!(limiter.delay(b), Duration::ZERO, "other customers go on");
        assert_eq!(limiter.delay(Scope::App), Duration::ZERO);
        // app usage slows everyone
        limiter.observe(
            b,
            &Usage {
                app_percent: Some(100),
                ..Usage::default()
            },
        );
        assert_eq!(limiter.delay(b), Duration::from_secs(10));
        assert_eq!(limiter.delay(Scope::App), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_of_remembered_tokens_is_bounded() {
        let limiter = limiter();
        for i in 0..(MAX_SCOPES + 5) {
            let scope = Scope::Token(i as u64);
            limiter.observe(
                scope,
                &Usage {
                    business_percent: Some(90),
                    ..Usage::default()
                },
            );
        }
        let remembered = limiter.with_state(|s| s.tokens.len());
        assert!(remembered <= MAX_SCOPES, "{remembered}");
    }
}
