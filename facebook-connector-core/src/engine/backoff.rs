//! Waits between attempts: exponential with jitter, and waits that honour an upstream hint.

use std::time::Duration;

/// `initial × 2^(attempt-1)`, capped at `max`, then a random share between half and all of it
/// (so jobs that failed together do not come back together). `attempt` starts at 1.
pub fn exponential(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let step = initial
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(24)))
        .min(max);
    jitter(step, 0.5, 1.0)
}

/// The upstream's wait (or `fallback` without one), stretched by up to 10% so that waiters
/// held back by the same throttle spread out when it ends.
pub fn honour(hint: Option<Duration>, fallback: Duration) -> Duration {
    jitter(hint.unwrap_or(fallback), 1.0, 1.1)
}

fn jitter(base: Duration, low: f64, high: f64) -> Duration {
    if base.is_zero() {
        return base;
    }
    base.mul_f64(rand::random_range(low..=high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_is_capped_and_jittered() {
        let initial = Duration::from_secs(30);
        let max = Duration::from_secs(1800);
        for attempt in 1..=12 {
            let wait = exponential(attempt, initial, max);
            let full = initial.saturating_mul(2u32.pow(attempt - 1)).min(max);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
    }

    #[test]
    fn hints_are_honoured_never_shortened() {
        let hint = Duration::from_millis(600);
        for _ in 0..100 {
            let wait = honour(Some(hint), Duration::from_secs(60));
            assert!(wait >= hint && wait <= hint.mul_f64(1.1), "{wait:?}");
        }
        let wait = honour(None, Duration::from_secs(60));
        assert!(wait >= Duration::from_secs(60));
    }
}
