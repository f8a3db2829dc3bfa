//! Time, injected: the engine and the profile logic ask a [`Clock`] for "now" and sleep with
//! `tokio::time`, so tests of waits, leases and backoff run on tokio's paused time instead of
//! real sleeps.

use std::time::Duration;

use time::OffsetDateTime;

/// Tells the current wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock (production).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Wall-clock time that follows tokio's clock: it starts at `start` and advances exactly as
/// `tokio::time::Instant` does, so with `tokio::time::pause()` (or `start_paused`) sleeps
/// and "now" move together and a test of a 60-second lease takes no real time.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: OffsetDateTime,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn starting_at(start: OffsetDateTime) -> TokioClock {
        TokioClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }

    /// A clock reading the system time now.
    pub fn new() -> TokioClock {
        TokioClock::starting_at(OffsetDateTime::now_utc())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        let elapsed: Duration = self.origin.elapsed();
        self.start + elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let start = time::macros::datetime!(2026-12-01 00:00 UTC);
        let clock = TokioClock::starting_at(start);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), start + Duration::from_secs(3600));
    }
}
