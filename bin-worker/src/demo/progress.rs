//! What the demo shows while it runs (stderr): a progress bar on a terminal, plain lines
//! otherwise, fed by the engine's [`Observer`] hooks. It also records the moments the report
//! tells (the revocation, the pause), and revokes the chosen token at the chosen batch.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use facebook_connector_core::domain::{Job, JobId, ProfileId};
use facebook_connector_core::engine::{BatchAck, JobEnd, JobReport, Observer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::thousands;

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// Facebook revokes a token: after `after_batches` acknowledged batches of one of the
/// profile's files, `revoke` runs once (it invalidates the token in the fake Graph API).
pub struct Revocation {
    /// Whose token.
    pub profile: ProfileId,
    /// The profile's name.
    pub profile_name: String,
    /// After how many acknowledged batches of one of its files.
    pub after_batches: u32,
    /// What revokes it.
    pub revoke: Box<dyn Fn() + Send + Sync>,
}

/// One moment worth telling in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moment {
    /// Since the engine started.
    pub at: Duration,
    /// What happened.
    pub what: String,
}

/// What the observer saw of the revoked profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationSeen {
    /// Batches of the file acknowledged when the token was revoked.
    pub revoked_after: Option<u32>,
    /// The file whose batch triggered it.
    pub file: Option<String>,
    /// Pause reasons reported by the engine (one per paused job run).
    pub pauses: Vec<String>,
}

#[derive(Default)]
struct State {
    members: u64,
    batches: u64,
    delivered: u64,
    acked_per_job: HashMap<JobId, u32>,
    moments: Vec<Moment>,
    seen: RevocationSeen,
    revoked: bool,
    last_line: Option<Instant>,
}

/// The demo's observer.
pub struct DemoProgress {
    started: Instant,
    total_members: u64,
    total_files: u64,
    bar: Option<ProgressBar>,
    revocation: Option<Revocation>,
    state: Mutex<State>,
}

impl DemoProgress {
    /// Progress towards `total_members` acknowledged members in `total_files` files.
    pub fn new(total_members: u64, total_files: u64, revocation: Option<Revocation>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total_members), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:20}] {human_pos}/{human_len} members acknowledged · {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        DemoProgress {
            started: Instant::now(),
            total_members,
            total_files,
            bar,
            revocation,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Writes one line (above the bar on a terminal) and keeps it as a moment of the report
    /// when `moment` is set.
    pub fn say(&self, line: &str, moment: bool) {
        let at = self.elapsed();
        if moment {
            self.lock().moments.push(Moment {
                at,
                what: line.to_owned(),
            });
        }
        let text = format!("{:>6.2}s  {line}", at.as_secs_f64());
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// The moments told so far.
    pub fn moments(&self) -> Vec<Moment> {
        self.lock().moments.clone()
    }

    /// What was seen of the revocation.
    pub fn revocation_seen(&self) -> RevocationSeen {
        self.lock().seen.clone()
    }

    /// Members and batches acknowledged.
    pub fn acknowledged(&self) -> (u64, u64) {
        let s = self.lock();
        (s.members, s.batches)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn update(&self, state: &mut State) {
        let message = format!(
            "{}, {}/{} files",
            super::report::counted(state.batches, "batch", "batches"),
            state.delivered,
            self.total_files
        );
        if let Some(bar) = &self.bar {
            bar.set_position(state.members.min(self.total_members));
            bar.set_message(message);
            return;
        }
        let due = state
            .last_line
            .is_none_or(|last| last.elapsed() >= PLAIN_EVERY);
        if due {
            state.last_line = Some(Instant::now());
            eprintln!(
                "{:>6.2}s  progress: {} of {} members acknowledged, {message} delivered",
                self.elapsed().as_secs_f64(),
                thousands(state.members),
                thousands(self.total_members),
            );
        }
    }
}

fn file_name(job: &Job) -> String {
    job.file.file().as_str().to_owned()
}

impl Observer for DemoProgress {
    fn job_started(&self, job: &Job) {
        let resumed = job
            .checkpoint
            .as_ref()
            .map_or(0, |c| c.batches_acknowledged);
        if resumed > 0 {
            self.say(
                &format!(
                    "resuming {} after the {resumed} batches Facebook acknowledged",
                    file_name(job)
                ),
                true,
            );
        } else {
            self.say(&format!("delivering {}", file_name(job)), false);
        }
    }

    fn batch_acknowledged(&self, job: &Job, ack: &BatchAck) {
        let revoke_now = {
            let mut state = self.lock();
            state.members += ack.rows;
            state.batches += 1;
            let acked = {
                let n = state.acked_per_job.entry(job.id).or_insert(0);
                *n = (*n).max(ack.batch_seq);
                *n
            };
            let revoke_now = !state.revoked
                && self
                    .revocation
                    .as_ref()
                    .is_some_and(|r| r.profile == job.profile_id && acked >= r.after_batches);
            if revoke_now {
                state.revoked = true;
                state.seen.revoked_after = Some(acked);
                state.seen.file = Some(file_name(job));
            }
            self.update(&mut state);
            revoke_now.then_some(acked)
        };
        if let (Some(acked), Some(revocation)) = (revoke_now, &self.revocation) {
            (revocation.revoke)();
            self.say(
                &format!(
                    "Facebook revokes {}'s token mid-file ({}: batch {acked} acknowledged)",
                    revocation.profile_name,
                    file_name(job)
                ),
                true,
            );
        }
    }

    fn job_finished(&self, report: &JobReport) {
        let file = report.file.file().as_str();
        match &report.end {
            JobEnd::Delivered => {
                {
                    let mut state = self.lock();
                    state.delivered += 1;
                    self.update(&mut state);
                }
                let revoked = self
                    .revocation
                    .as_ref()
                    .is_some_and(|r| r.profile == report.profile_id);
                self.say(
                    &format!(
                        "delivered {file}: {} members sent",
                        thousands(report.counters.members_sent)
                    ),
                    revoked,
                );
            }
            JobEnd::Paused { reason } => {
                self.lock().seen.pauses.push(reason.clone());
                self.say(
                    &format!(
                        "paused {file} after {} members: {reason}",
                        thousands(report.counters.members_sent)
                    ),
                    true,
                );
            }
            JobEnd::Failed { reason } => self.say(&format!("failed {file}: {reason}"), true),
            JobEnd::RetryScheduled { reason, .. } => {
                self.say(&format!("{file} will be retried: {reason}"), true);
            }
            JobEnd::Deferred { reason, .. } => {
                self.say(&format!("{file} handed back: {reason}"), false);
            }
            JobEnd::Abandoned => self.say(&format!("{file}: lease lost"), true),
        }
    }
}
