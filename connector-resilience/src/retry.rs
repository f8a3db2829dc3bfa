//! The one retry policy: [`backon`]'s retry loop with the client's classification (`when`),
//! the upstream's wait hints and the total budget (`adjust`), and a log line per retry
//! (`notify`).

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

/// What a client says about one failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Final: sending again cannot help, or is not safe (a request that may have been
    /// processed and is not idempotent).
    Never,
    /// Temporary: try again after the policy's exponential backoff (with jitter).
    Backoff,
    /// Temporary, and the upstream said how long to wait (`Retry-After`, Facebook's
    /// `estimated_time_to_regain_access`): try again after that wait, stretched by up to 10%
    /// so that callers told the same wait do not come back together. Zero: at once (e.g. a
    /// limiter in the next attempt does the waiting).
    After(Duration),
}

/// How one call is retried. See the crate docs for why the budget is short and what happens
/// to longer waits.
///
/// `Default` is the production policy (5 attempts, 0.5 s to 8 s backoff, 30 s budget).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, **the first included** (`1` = never retry). Values below 1 count
    /// as 1.
    pub max_attempts: u32,
    /// The first backoff step; each later one doubles, up to `max_delay`. A step is drawn
    /// between half and all of its value (jitter).
    pub min_delay: Duration,
    /// The largest backoff step (an upstream's own hint may be longer, within the budget).
    pub max_delay: Duration,
    /// The longest one call may take, attempts and waits together. A wait that would end
    /// past it is not taken: the policy stops and reports the wait in [`GaveUp::wait`].
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Millisecond waits, for tests: retries happen but take almost no time.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
            budget: Duration::from_secs(10),
        }
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::fast()
        }
    }

    /// Runs `op` until it succeeds, `classify` calls its error final, or the next wait does
    /// not fit (in the attempts or in the budget). Waits sleep on tokio's clock, so tests run
    /// them on paused time. `what` names the call in the log lines.
    pub async fn run<T, E, C, F, Fut>(
        &self,
        what: &str,
        classify: C,
        mut op: F,
    ) -> Result<T, GaveUp<E>>
    where
        E: std::error::Error,
        C: Fn(&E) -> Retry,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let max_attempts = self.max_attempts.max(1);
        let budget = self.budget;
        // atomics and a mutex rather than cells: the future must stay `Send`
        let attempts = AtomicU32::new(0);
        let refused: Mutex<Option<Duration>> = Mutex::new(None);
        let refuse = |wait: Duration| match refused.lock() {
            Ok(mut slot) => *slot = Some(wait),
            Err(poisoned) => *poisoned.into_inner() = Some(wait),
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .without_max_times();
        let result = (|| {
            let number = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            op(Attempt {
                number,
                remaining: budget.saturating_sub(start.elapsed()),
            })
        })
        .retry(backoff)
        .when(|error| classify(error) != Retry::Never)
        .adjust(|error, next| {
            let wait = match classify(error) {
                Retry::After(hint) => stretch(hint),
                _ => shrink(next.unwrap_or(self.max_delay)),
            };
            let made = attempts.load(Ordering::Relaxed);
            if made >= max_attempts || start.elapsed().saturating_add(wait) > budget {
                refuse(wait);
                None
            } else {
                Some(wait)
            }
        })
        .notify(|error, wait| {
            tracing::warn!(
                call = what,
                attempt = attempts.load(Ordering::Relaxed),
                wait_ms = millis(wait),
                error = %Chain(error),
                "call failed, retrying"
            );
        })
        .await;
        let attempts = attempts.load(Ordering::Relaxed);
        let refused = match refused.into_inner() {
            Ok(wait) => wait,
            Err(poisoned) => poisoned.into_inner(),
        };
        result.map_err(|error| {
            let wait = refused;
            if let Some(wait) = wait {
                tracing::warn!(
                    call = what,
                    attempts,
                    wait_ms = millis(wait),
                    error = %Chain(&error),
                    "call failed, giving up: the next wait does not fit in the call's attempts or budget"
                );
            }
            GaveUp {
                error,
                attempts,
                wait,
            }
        })
    }
}

/// One attempt of a call, as [`RetryPolicy::run`] hands it to the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// What is left of the call's budget when the attempt starts.
    pub remaining: Duration,
}

impl Attempt {
    /// A timeout for this attempt: `configured`, but never running past the call's budget,
    /// and never below `floor` (an attempt with almost no time left still gets a chance).
    pub fn timeout(&self, configured: Duration, floor: Duration) -> Duration {
        configured.min(self.remaining.max(floor))
    }
}

/// A call that failed for good.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made.
    pub attempts: u32,
    /// When the error was temporary but the policy stopped because the next wait did not fit
    /// in the attempts or the budget: that wait (the upstream's hint, or the next backoff
    /// step). A caller with a job queue schedules the next try after it. `None` when the error
    /// was final.
    pub wait: Option<Duration>,
}

impl<E> GaveUp<E> {
    /// The error alone.
    pub fn into_error(self) -> E {
        self.error
    }
}

/// A backoff step drawn between half and all of itself.
fn shrink(step: Duration) -> Duration {
    step.mul_f64(rand::random_range(0.5..=1.0))
}

/// An upstream's wait, never shortened, stretched by up to 10%.
fn stretch(hint: Duration) -> Duration {
    hint.mul_f64(rand::random_range(1.0..=1.1))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An error and its causes on one line.
struct Chain<'a>(&'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Failure {
        Temporary,
        Hinted(Duration),
        Final,
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl std::error::Error for Failure {}

    fn classify(f: &Failure) -> Retry {
        match f {
            Failure::Temporary => Retry::Backoff,
            Failure::Hinted(wait) => Retry::After(*wait),
            Failure::Final => Retry::Never,
        }
    }

    fn policy(max_attempts: u32, budget: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            budget,
        }
    }

    async fn failing(
        policy: &RetryPolicy,
        errors: Vec<Failure>,
    ) -> (Result<u32, GaveUp<Failure>>, Vec<Attempt>) {
        let seen = std::cell::RefCell::new(Vec::new());
        let result = policy
            .run("test", classify, |attempt| {
                seen.borrow_mut().push(attempt);
                let error = errors.get(attempt.number as usize - 1).copied();
                async move {
                    match error {
                        Some(e) => Err(e),
                        None => Ok(attempt.number),
                    }
                }
            })
            .await;
        (result, seen.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn max_attempts_counts_the_first_attempt() {
        let start = Instant::now();
        let (result, seen) = failing(
            &policy(3, Duration::from_secs(60)),
            vec![Failure::Temporary; 10],
        )
        .await;
        let gave_up = result.unwrap_err();
        assert_eq!(seen.len(), 3);
        assert_eq!(gave_up.attempts, 3);
        // the wait after the third failure was not taken, and is reported
        assert!(gave_up.wait.is_some());
        // two backoff steps of 1 s and 2 s, each drawn between half and all of itself
        let slept = start.elapsed();
        assert!(slept >= Duration::from_millis(1_500) && slept <= Duration::from_secs(3));
        assert_eq!(
            failing(&RetryPolicy::none(), vec![Failure::Temporary])
                .await
                .1
                .len(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn success_after_temporary_failures() {
        let (result, seen) = failing(
            &policy(5, Duration::from_secs(60)),
            vec![Failure::Temporary, Failure::Temporary],
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(seen.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn final_errors_are_not_retried_and_report_no_wait() {
        let start = Instant::now();
        let (result, seen) =
            failing(&policy(5, Duration::from_secs(60)), vec![Failure::Final]).await;
        let gave_up = result.unwrap_err();
        assert_eq!((seen.len(), gave_up.wait), (1, None));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_is_honoured_with_a_little_jitter() {
        let hint = Duration::from_millis(600);
        let start = Instant::now();
        let (result, _) = failing(
            &policy(5, Duration::from_secs(30)),
            vec![Failure::Hinted(hint)],
        )
        .await;
        assert_eq!(result.unwrap(), 2);
        let slept = start.elapsed();
        assert!(slept >= hint && slept <= hint.mul_f64(1.1), "{slept:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_budget_is_not_taken_but_reported() {
        let start = Instant::now();
        let (result, seen) = failing(
            &policy(5, Duration::from_secs(30)),
            vec![Failure::Hinted(Duration::from_secs(300))],
        )
        .await;
        let gave_up = result.unwrap_err();
        assert_eq!(seen.len(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO, "no sleep at all");
        let wait = gave_up.wait.unwrap();
        assert!(wait >= Duration::from_secs(300), "{wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_attempts_and_waits_together() {
        let budget = Duration::from_secs(5);
        let start = Instant::now();
        let seen = std::cell::RefCell::new(Vec::new());
        let result: Result<(), _> = policy(100, budget)
            .run("slow", classify, |attempt| {
                seen.borrow_mut().push(attempt);
                async move {
                    // each attempt takes a second, cut (like a client's timeout) at the budget
                    tokio::time::sleep(Duration::from_secs(1).min(attempt.remaining)).await;
                    Err(Failure::Temporary)
                }
            })
            .await;
        assert!(result.unwrap_err().wait.is_some());
        assert!(start.elapsed() <= budget, "{:?}", start.elapsed());
        let seen = seen.into_inner();
        assert!(seen.len() >= 2, "{seen:?}");
        assert_eq!(seen[0].remaining, budget);
        assert!(seen.windows(2).all(|w| w[1].remaining < w[0].remaining));
    }

    #[test]
    fn attempt_timeouts_stay_within_the_budget() {
        let attempt = Attempt {
            number: 2,
            remaining: Duration::from_secs(3),
        };
        let floor = Duration::from_secs(1);
        assert_eq!(
            attempt.timeout(Duration::from_secs(60), floor),
            Duration::from_secs(3)
        );
        assert_eq!(
            attempt.timeout(Duration::from_secs(2), floor),
            Duration::from_secs(2)
        );
        let late = Attempt {
            number: 3,
            remaining: Duration::ZERO,
        };
        assert_eq!(late.timeout(Duration::from_secs(60), floor), floor);
    }
}
