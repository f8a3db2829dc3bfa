//! Rate-limit signals (`X-App-Usage`, `X-Business-Use-Case-Usage`) and the client-side
//! limiter that spaces calls out as usage approaches 100% and holds them back after a throttle.
//!
//! Scopes follow Facebook's quotas: `X-App-Usage` and the app-level throttles (codes 4 and
//! 341) concern the whole app, so they space out every call; the custom-audience quota is per
//! **ad account** (facebook-api.md), so `X-Business-Use-Case-Usage` answers to audience and
//! upload calls, and the throttles they get, only hold back calls for the same ad account —
//! one customer at its quota does not slow the others. Calls without an ad account (token
//! inspection, `/me`, ad account listings, audience lookups) are in the app scope only.
//!
//! The limiter **reserves slots**: each call takes the next free slot of its scopes and moves
//! the scope's next free slot on by the pacing interval (zero below `slow_down_from`; growing
//! linearly to `max_spacing` just below 100%), and by at least `queue_spacing` when the
//! caller had to queue (behind a throttle's end or another caller's slot), with jitter. So N
//! callers waiting for the same throttle to end come back one after another, not together.
//! Pacing applies only *before* the limit: at 100% Facebook throttles, and its
//! `estimated_time_to_regain_access` is the wait (the usage figures of a throttle answer add
//! no pacing on top of it).
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

/// Ad account scopes remembered at most; idle ones are dropped first.
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

/// Whose budget a call spends: the app's always, and for audience and upload calls also its
/// ad account's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope<'a> {
    /// The whole app.
    App,
    /// One ad account (`act_<digits>`).
    AdAccount(&'a str),
}

#[derive(Debug, Default)]
struct State {
    /// Last reported usage percentage, and when.
    percent: u32,
    seen_at: Option<Instant>,
    /// No call before this (a throttle's wait estimate).
    blocked_until: Option<Instant>,
    /// The next free slot: no call before this (reservations and pacing).
    next_free: Option<Instant>,
}

impl State {
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

    /// The earliest moment a call may go.
    fn earliest(&self, now: Instant) -> Instant {
        [self.blocked_until, self.next_free]
            .into_iter()
            .flatten()
            .fold(now, Instant::max)
    }

    /// Takes `slot` and moves the next free slot on.
    fn take(&mut self, cfg: &LimiterConfig, now: Instant, slot: Instant) {
        let mut spacing = self.pacing(cfg, now);
        if self.earliest(now) > now {
            // the caller queued here: keep the queue spread out
            spacing = spacing.max(cfg.queue_spacing);
        }
        if !spacing.is_zero() {
            let next = slot + spacing.mul_f64(rand::random_range(1.0..=1.25));
            self.next_free = Some(self.next_free.map_or(next, |n| n.max(next)));
        }
    }

    fn observe(&mut self, cfg: &LimiterConfig, percent: u32, now: Instant) {
        self.percent = percent;
        self.seen_at = Some(now);
        // the answer tells how fast to go from now on
        let spacing = pacing_delay(cfg, percent);
        if !spacing.is_zero() {
            let next = now + spacing;
            self.next_free = Some(self.next_free.map_or(next, |n| n.max(next)));
        }
    }

    fn block(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    fn is_idle(&self, cfg: &LimiterConfig, now: Instant) -> bool {
        self.earliest(now) <= now
            && self
                .seen_at
                .is_none_or(|t| now.saturating_duration_since(t) > cfg.usage_ttl)
    }
}

#[derive(Debug, Default)]
struct Scopes {
    app: State,
    accounts: HashMap<String, State>,
}

impl Scopes {
    fn account(&mut self, cfg: &LimiterConfig, id: &str, now: Instant) -> &mut State {
        if self.accounts.len() >= MAX_SCOPES && !self.accounts.contains_key(id) {
            self.accounts.retain(|_, st| !st.is_idle(cfg, now));
            if self.accounts.len() >= MAX_SCOPES
                && let Some(oldest) = self
                    .accounts
                    .iter()
                    .min_by_key(|(_, st)| st.seen_at)
                    .map(|(k, _)| k.clone())
            {
                self.accounts.remove(&oldest);
            }
        }
        self.accounts.entry(id.to_owned()).or_default()
    }
}

/// Remembers usage reports, throttles and reserved slots, and hands out slots.
#[derive(Debug)]
pub(crate) struct Limiter {
    cfg: LimiterConfig,
    state: Mutex<Scopes>,
}

impl Limiter {
    pub(crate) fn new(cfg: LimiterConfig) -> Self {
        Limiter {
            cfg,
            state: Mutex::new(Scopes::default()),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut Scopes) -> R) -> R {
        // A poisoned lock only means another task panicked mid-update of plain numbers.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Reserves the next free slot for a call of the app and, when given, of `ad_account`,
    /// and returns the wait until it — if that wait is at most `max_wait`. Otherwise nothing
    /// is reserved and the wait is the error (the caller hands it back instead of sleeping).
    pub(crate) fn reserve(
        &self,
        ad_account: Option<&str>,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        let now = Instant::now();
        let cfg = &self.cfg;
        self.with_state(|s| {
            let app_at = s.app.earliest(now);
            let account_at = ad_account
                .and_then(|id| s.accounts.get(id))
                .map_or(now, |st| st.earliest(now));
            let slot = app_at.max(account_at);
            let wait = slot.saturating_duration_since(now);
            if wait > max_wait {
                return Err(wait);
            }
            s.app.take(cfg, now, slot);
            if let Some(id) = ad_account {
                s.account(cfg, id, now).take(cfg, now, slot);
            }
            Ok(wait)
        })
    }

    /// Records what an answer to a call (of `ad_account`, when it has one) said about usage.
    pub(crate) fn observe(&self, ad_account: Option<&str>, usage: &Usage) {
        let now = Instant::now();
        let cfg = &self.cfg;
        self.with_state(|s| {
            if let Some(p) = usage.app_percent {
                s.app.observe(cfg, p, now);
            }
            // without an ad account there is no quota to pin the business figures on
            if let (Some(p), Some(id)) = (usage.business_percent, ad_account) {
                s.account(cfg, id, now).observe(cfg, p, now);
            }
        });
    }

    /// No call in `scope` before `now + wait` (a throttle with a wait estimate).
    pub(crate) fn block_for(&self, scope: Scope<'_>, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let cfg = &self.cfg;
        self.with_state(|s| match scope {
            Scope::App => s.app.block(until),
            Scope::AdAccount(id) => s.account(cfg, id, now).block(until),
        });
    }
}

/// The spacing for a usage percentage: none below `slow_down_from` and none from 100% on
/// (Facebook's throttle and its estimate take over there); in between it grows linearly to
/// `max_spacing`.
pub(crate) fn pacing_delay(cfg: &LimiterConfig, percent: u32) -> Duration {
    let from = u32::from(cfg.slow_down_from.min(99));
    if percent < from || percent >= 100 {
        return Duration::ZERO;
    }
    let x = f64::from(percent - from) / f64::from(100 - from);
    cfg.max_spacing.mul_f64(x.clamp(0.0, 1.0))
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

    fn cfg() -> LimiterConfig {
        LimiterConfig {
            slow_down_from: 80,
            max_spacing: Duration::from_secs(10),
            queue_spacing: Duration::from_secs(1),
            usage_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn pacing_grows_towards_the_limit_and_stops_at_it() {
        let cfg = cfg();
        assert_eq!(pacing_delay(&cfg, 50), Duration::ZERO);
        assert_eq!(pacing_delay(&cfg, 80), Duration::ZERO);
        assert_eq!(pacing_delay(&cfg, 90), Duration::from_secs(5));
        assert_eq!(pacing_delay(&cfg, 99), Duration::from_millis(9_500));
        // at the limit the throttle's own estimate governs: no pacing on top of it
        assert_eq!(pacing_delay(&cfg, 100), Duration::ZERO);
        assert_eq!(pacing_delay(&cfg, 250), Duration::ZERO);
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn usage_spaces_calls_and_old_usage_is_forgotten() {
        let limiter = Limiter::new(cfg());
        assert_eq!(limiter.reserve(None, LONG), Ok(Duration::ZERO));
        let at_90 = Usage {
            app_percent: Some(90),
            ..Usage::default()
        };
        limiter.observe(None, &at_90);
        // 5 s spacing from the answer on, then between reservations (with up to 25% jitter)
        assert_eq!(limiter.reserve(None, LONG), Ok(Duration::from_secs(5)));
        let second = limiter.reserve(None, LONG).unwrap();
        assert!(
            second >= Duration::from_secs(10) && second <= Duration::from_millis(11_250),
            "{second:?}"
        );
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(limiter.reserve(None, LONG), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_callers_budget_reserves_nothing() {
        let limiter = Limiter::new(cfg());
        limiter.block_for(Scope::AdAccount("act_1"), Duration::from_secs(300));
        assert_eq!(
            limiter.reserve(Some("act_1"), Duration::from_secs(30)),
            Err(Duration::from_secs(300))
        );
        // nothing was reserved: the next caller with time to wait gets the block's end
        assert_eq!(
            limiter.reserve(Some("act_1"), LONG),
            Ok(Duration::from_secs(300))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ad_account_usage_and_throttles_only_hold_back_that_ad_account() {
        let limiter = Limiter::new(cfg());
        limiter.observe(
            Some("act_1"),
            &Usage {
                business_percent: Some(90),
                ..Usage::default()
            },
        );
        limiter.block_for(Scope::AdAccount("act_1"), Duration::from_secs(300));
        assert_eq!(
            limiter.reserve(Some("act_1"), LONG),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(limiter.reserve(Some("act_2"), LONG), Ok(Duration::ZERO));
        assert_eq!(limiter.reserve(None, LONG), Ok(Duration::ZERO));
        // business figures without an ad account pin on nothing
        limiter.observe(
            None,
            &Usage {
                business_percent: Some(99),
                ..Usage::default()
            },
        );
        assert_eq!(limiter.reserve(Some("act_2"), LONG), Ok(Duration::ZERO));
        // app usage and app-level throttles hold back everyone
        limiter.block_for(Scope::App, Duration::from_secs(60));
        assert_eq!(
            limiter.reserve(Some("act_2"), LONG),
            Ok(Duration::from_secs(60))
        );
    }

    /// Several uploads of one ad account wait for the same throttle: each takes its own slot,
    /// so they come back spread out, not all at the block's end.
    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_spread_out_after_a_throttle() {
        let limiter = std::sync::Arc::new(Limiter::new(cfg()));
        let start = Instant::now();
        limiter.block_for(Scope::AdAccount("act_1"), Duration::from_secs(2));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let wait = limiter.reserve(Some("act_1"), LONG).unwrap();
                    tokio::time::sleep(wait).await;
                    Instant::now() - start
                })
            })
            .collect();
        let mut fired = Vec::new();
        for task in tasks {
            fired.push(task.await.unwrap());
        }
        fired.sort();
        assert_eq!(
            fired[0],
            Duration::from_secs(2),
            "the first goes when the block ends"
        );
        for pair in fired.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(1) && gap <= Duration::from_millis(1_250),
                "{fired:?}"
            );
        }
        // another ad account is not queued behind them
        assert_eq!(limiter.reserve(Some("act_2"), LONG), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn the_number_of_remembered_ad_accounts_is_bounded() {
        let limiter = Limiter::new(cfg());
        for i in 0..(MAX_SCOPES + 5) {
            limiter.observe(
                Some(&format!("act_{i}")),
                &Usage {
                    business_percent: Some(90),
                    ..Usage::default()
                },
            );
        }
        let remembered = limiter.with_state(|s| s.accounts.len());
        assert!(remembered <= MAX_SCOPES, "{remembered}");
    }
}
