//! The job runner: `concurrency` slots; each free slot claims the next job (the queue picks
//! fairly across profiles) and runs it on its own task. With nothing runnable it sleeps until
//! the queue's next due time, the poll interval, or a wake-up from the feed follower,
//! whichever comes first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::Claim;
use crate::error::display_chain;

use super::{Inner, backoff};

/// Runs jobs until `shutdown`, then lets the running ones stop gracefully (checkpoint, hand
/// back) within the shutdown grace, and abandons what is left (their leases run out).
pub(crate) async fn run(engine: Arc<Inner>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(engine.config.concurrency));
    let drain = CancellationToken::new();
    let mut running = JoinSet::new();
    let mut failures = 0u32;
    loop {
        // reap finished jobs so the set does not grow
        while running.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        // registered before the claim, so work recorded meanwhile still wakes us
        let wake = engine.wake.notified();
        tokio::pin!(wake);
        let now = engine.ports.clock.now();
        let claim = engine
            .ports
            .jobs
            .claim(&engine.config.worker_id, engine.config.lease, now)
            .await;
        match claim {
            Ok(Claim::Job(claimed)) => {
                failures = 0;
                let engine = engine.clone();
                let drain = drain.clone();
                running.spawn(async move {
                    let report = super::job::run(&engine, *claimed, drain).await;
                    drop(permit);
                    report
                });
            }
            Ok(Claim::Idle { next_due }) => {
                failures = 0;
                drop(permit);
                let mut wait = engine.config.poll_interval;
                if let Some(due) = next_due {
                    let until_due: Duration = (due - engine.ports.clock.now())
                        .try_into()
                        .unwrap_or_default();
                    wait = wait.min(until_due.max(Duration::from_millis(10)));
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = wake => {}
                    () = tokio::time::sleep(wait) => {}
                    // a job finishing frees a slot but makes nothing due; nothing to do here
                }
            }
            Err(error) => {
                drop(permit);
                failures += 1;
                let wait = backoff::exponential(
                    failures,
                    Duration::from_millis(500),
                    engine.config.poll_interval.max(Duration::from_secs(1)) * 6,
                );
                tracing::warn!(
                    error = %display_chain(&error),
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot claim a job"
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // shutdown: no new claims; running jobs finish their in-flight batches and hand back
    drain.cancel();
    let grace = engine.config.shutdown_grace;
    let all_done = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "jobs still running at the end of the shutdown grace: they are taken up again when their leases run out"
        );
        running.abort_all();
        while running.join_next().await.is_some() {}
    }
}
