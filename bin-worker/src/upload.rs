//! `upload`: one local file straight into a Custom Audience, through the engine's own upload
//! pipeline ([`FileUpload`]: batching, the session protocol, re-sends, session replacement,
//! running-total receipts), with the user token from `FACEBOOK_ACCESS_TOKEN`.
//!
//! * `--dry-run` is `payload`: the same code prints the same bytes, and nothing is sent (no
//!   token or app credentials needed).
//! * The audience's ad account is looked up (`GET /?ids={audience}&fields=account_id,…`): it
//!   keys Facebook's upload sessions and throttles, and the lookup checks that the token can
//!   see the audience before any record is read.
//! * Each run is one fresh upload session ([`JobId::new_v7`]): running `upload` again sends
//!   the whole file again in a new session.
//! * Progress: a bar on a terminal (records, batches, rate, ETA from the file size), a plain
//!   line every few seconds otherwise, on stderr. The summary goes to stdout.
//! * Ctrl-C (or SIGTERM) stops sending: the batches in flight finish, then it says how far it
//!   got and exits 130; a second Ctrl-C abandons the batches in flight.
//! * A rate limit or a transient failure that outlasts the client's own short retries is
//!   waited out (Facebook's estimate, else a growing pause) and the upload continues after the
//!   last acknowledged batch, a few times before it gives up.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facebook_connector_core::domain::{
    AdAccountId, AudienceId, Checkpoint, JobId, Received, RecordFormat,
};
use facebook_connector_core::engine::EngineConfig;
use facebook_connector_core::engine::pipeline::{
    BatchAck, Control, FileUpload, Outcome, Progress, ReadCounts, ReadSummary,
};
use facebook_connector_core::error::display_chain;
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::ports::{SystemClock, UploadTarget};
use facebook_connector_core::source::is_parquet_path;
use facebook_connector_core::{Disposition, Error};
use facebook_connector_host::config::secret;
use facebook_connector_host::{MissingValue, ServiceArgs, exit, require};
use facebook_marketing::{GraphClient, GraphConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use secrecy::SecretString;

use crate::cli::Format;
use crate::records;

/// The variable holding the user token (never a flag: it would show in process lists).
pub const ACCESS_TOKEN_ENV: &str = "FACEBOOK_ACCESS_TOKEN";
/// Exit status after Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// Waits for a rate limit or a transient failure before the upload gives up.
const MAX_WAITS: u32 = 5;
/// The longest wait the upload sits out.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// `upload`'s flags. The Facebook app flags are the shared ones of `serve` and `run`; the
/// database and token-key flags among them mean nothing here and are hidden.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("database_url", |a| a.hide(true)),
    mut_arg("token_keys", |a| a.hide(true)),
    mut_arg("narrative_api_base_uri", |a| a.hide(true)),
    mut_arg("facebook_app_id", |a| a.help("The Facebook app's id (required by `upload`)")),
    mut_arg("facebook_app_secret", |a| {
        a.help("The Facebook app's secret, for `appsecret_proof` (required by `upload`)")
    }),
)]
pub struct UploadArgs {
    /// The Custom Audience the members go to
    #[arg(long, value_name = "ID")]
    pub audience_id: AudienceId,
    /// Record shape: `legacy` ({"data": {...}} lines) or `dataset` (attributes at top level)
    #[arg(long, value_enum)]
    pub format: Format,
    /// The file: JSON lines, or Parquet rows when the name ends in `.parquet`
    pub file: PathBuf,
    /// Print the payloads (exactly what `payload` prints) and send nothing; needs no token
    #[arg(long)]
    pub dry_run: bool,
    /// Members per batch (1..=10000)
    #[arg(long, env = "BATCH_SIZE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,
    /// Batches in flight at once
    #[arg(long, env = "UPLOADS_IN_FLIGHT", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub uploads_in_flight: u16,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// A missing `FACEBOOK_ACCESS_TOKEN`.
#[derive(Debug, thiserror::Error)]
#[error(
    "missing {ACCESS_TOKEN_ENV} (environment): required by `upload` (the user token of the audience's ad account)"
)]
struct MissingToken;

/// Why an upload could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot read {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the graph api client")]
    Client(#[source] facebook_marketing::GraphError),
    #[error("cannot look up audience {audience}")]
    Lookup {
        audience: AudienceId,
        #[source]
        source: facebook_marketing::GraphError,
    },
    #[error(
        "audience {0} does not exist or this token cannot see it (check the id and that the token's user has access to its ad account)"
    )]
    NoAudience(AudienceId),
    #[error("facebook did not say which ad account audience {0} belongs to")]
    NoAdAccount(AudienceId),
}

/// Everything resolved from the flags.
struct Settings {
    token: SecretString,
    graph: GraphConfig,
}

impl UploadArgs {
    fn settings(&self) -> Result<Settings, Box<dyn std::error::Error>> {
        const UPLOAD: &str = "upload";
        let token = std::env::var(ACCESS_TOKEN_ENV)
            .ok()
            .and_then(|t| secret(&t).ok())
            .ok_or(MissingToken)?;
        let f = &self.service;
        let app_id: Result<String, MissingValue> = require(
            f.facebook_app_id.clone(),
            "--facebook-app-id",
            "FACEBOOK_APP_ID",
            UPLOAD,
        );
        let app_secret = require(
            f.facebook_app_secret.clone(),
            "--facebook-app-secret",
            "FACEBOOK_APP_SECRET",
            UPLOAD,
        )?;
        let graph = GraphConfig::new(app_id?, app_secret)
            .with_base_url(f.facebook_graph_url.clone())
            .with_api_version(f.facebook_api_version.clone());
        Ok(Settings { token, graph })
    }
}

/// Runs `upload`; returns the exit status.
pub fn main(args: &UploadArgs) -> ExitCode {
    let format = RecordFormat::from(args.format);
    if args.dry_run {
        return match records::payload(Some(&args.file), format, usize::from(args.batch_size)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => exit::failure(e.as_ref()),
        };
    }
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => return exit::config_error(e.as_ref()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fbc-upload")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::failure(&e),
    };
    runtime.block_on(upload(args, format, settings))
}

async fn upload(args: &UploadArgs, format: RecordFormat, settings: Settings) -> ExitCode {
    let size = match std::fs::metadata(&args.file) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => {
            return exit::failure(&StartError::File {
                path: args.file.display().to_string(),
                source: std::io::Error::other("not a regular file"),
            });
        }
        Err(source) => {
            return exit::failure(&StartError::File {
                path: args.file.display().to_string(),
                source,
            });
        }
    };
    let client = match GraphClient::new(settings.graph) {
        Ok(client) => client,
        Err(e) => return exit::failure(&StartError::Client(e)),
    };
    let (target, audience_name) =
        match resolve_target(&client, &settings.token, &args.audience_id).await {
            Ok(found) => found,
            Err(e) => return exit::failure(&e),
        };
    let job_id = JobId::new_v7();
    let upload = FileUpload {
        sink: Arc::new(client),
        clock: Arc::new(SystemClock),
        token: settings.token,
        target: target.clone(),
        job_id,
        batch_size: usize::from(args.batch_size),
        uploads_in_flight: usize::from(args.uploads_in_flight),
        session_max_age: EngineConfig::new(EngineConfig::default_worker_id()).session_max_age,
        read_ahead: true,
    };
    let estimate = estimate_records(&args.file, size);
    let mut progress = Terminal::new(estimate);
    let control = Control::default();
    let signals = tokio::spawn(watch_signals(control.clone(), progress.bar.clone()));
    progress.say(&format!(
        "uploading {} to audience {} ({:?}, ad account {}) in upload session {}",
        args.file.display(),
        target.audience,
        audience_name,
        target.ad_account,
        job_id.upload_session_id(0)
    ));

    let mut checkpoint = Checkpoint::start(job_id);
    let mut waits = 0u32;
    let outcome = loop {
        let outcome = upload
            .run(
                args.file.clone(),
                format,
                ParserConfig::default(),
                checkpoint,
                &mut progress,
                &control,
            )
            .await;
        let Outcome::Failed {
            checkpoint: reached,
            error,
        } = &outcome
        else {
            break outcome;
        };
        waits += 1;
        let Some(pause) = wait_before_resuming(error, waits) else {
            break outcome;
        };
        progress.say(&format!(
            "{} after {} members: waiting {} before going on ({waits} of {MAX_WAITS}): {}",
            if matches!(error, Error::Throttled { .. }) {
                "facebook throttles this ad account"
            } else {
                "facebook did not answer"
            },
            reached.counters.members_sent,
            humantime::format_duration(Duration::from_secs(pause.as_secs().max(1))),
            display_chain(error)
        ));
        checkpoint = *reached;
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = control.stop.cancelled() => break Outcome::Stopped { checkpoint: *reached },
        }
    };
    signals.abort();
    progress.finish();
    let report = Report {
        file: &args.file,
        target: &target,
        audience_name: &audience_name,
        progress: &progress,
        session_id: job_id.upload_session_id(0),
    };
    match outcome {
        Outcome::Delivered {
            checkpoint,
            summary,
        } => {
            print!("{}", report.delivered(&checkpoint, &summary));
            ExitCode::SUCCESS
        }
        Outcome::Stopped { checkpoint } => {
            print!("{}", report.stopped(&checkpoint));
            ExitCode::from(INTERRUPTED)
        }
        Outcome::Failed { checkpoint, error } => {
            print!("{}", report.failed(&checkpoint));
            let hint = if error.is_invalid_token() {
                " (get a new user token with ads_management for the audience's ad account)"
            } else {
                ""
            };
            eprintln!("error: {}{hint}", display_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// How long to wait before the `waits`-th resume after `error` (counting from 1), if the
/// upload should go on at all: only after a rate limit or a transient failure, at most
/// [`MAX_WAITS`] times, Facebook's estimate when it gave one (else 15 s doubling), never more
/// than [`MAX_WAIT`].
fn wait_before_resuming(error: &Error, waits: u32) -> Option<Duration> {
    let Disposition::RetryLater { wait, .. } = error.disposition() else {
        return None;
    };
    if waits == 0 || waits > MAX_WAITS {
        return None;
    }
    let backoff = Duration::from_secs(15).saturating_mul(2u32.saturating_pow(waits - 1));
    Some(wait.unwrap_or(backoff).min(MAX_WAIT))
}

/// The audience's ad account (and name), from Facebook.
async fn resolve_target(
    client: &GraphClient,
    token: &SecretString,
    audience: &AudienceId,
) -> Result<(UploadTarget, String), StartError> {
    let found = client
        .audiences(token, std::slice::from_ref(audience))
        .await
        .map_err(|source| StartError::Lookup {
            audience: audience.clone(),
            source,
        })?;
    let details = found
        .into_iter()
        .find(|a| &a.id == audience)
        .ok_or_else(|| StartError::NoAudience(audience.clone()))?;
    let ad_account = details
        .account_id
        .as_deref()
        .and_then(|id| AdAccountId::parse(id).ok())
        .ok_or_else(|| StartError::NoAdAccount(audience.clone()))?;
    Ok((
        UploadTarget {
            ad_account,
            audience: details.id,
        },
        details.name,
    ))
}

/// First signal: stop after the batches in flight; second Ctrl-C: abandon them.
async fn watch_signals(control: Control, bar: Option<ProgressBar>) {
    facebook_connector_host::shutdown::signal().await;
    say(
        bar.as_ref(),
        "stopping after the batches in flight (Ctrl-C again to stop at once)",
    );
    control.stop.cancel();
    if tokio::signal::ctrl_c().await.is_ok() {
        say(bar.as_ref(), "stopping now");
        control.abort.cancel();
    }
}

fn say(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

/// How many records the file holds, roughly: a Parquet file's footer says exactly; for JSON
/// lines, the size divided by the average line length of its first 4 MiB (exact when the file
/// is smaller).
fn estimate_records(path: &Path, size: u64) -> Option<u64> {
    if is_parquet_path(path) {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let file = std::fs::File::open(path).ok()?;
        let reader = SerializedFileReader::new(file).ok()?;
        return u64::try_from(reader.metadata().file_metadata().num_rows()).ok();
    }
    const SAMPLE: u64 = 4 << 20;
    let mut sample = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(SAMPLE)
        .read_to_end(&mut sample)
        .ok()?;
    let lines = sample.iter().filter(|b| **b == b'\n').count() as u64;
    let complete = sample.len() as u64 >= size;
    if complete {
        let unterminated = u64::from(sample.last().is_some_and(|b| *b != b'\n'));
        return Some(lines + unterminated);
    }
    if lines == 0 {
        return None;
    }
    Some(size.saturating_mul(lines) / sample.len() as u64)
}

/// The upload's progress on stderr: a bar on a terminal, plain lines otherwise.
struct Terminal {
    bar: Option<ProgressBar>,
    estimate: Option<u64>,
    started: Instant,
    last_line: Instant,
    /// Batches acknowledged (over every session).
    batches: u64,
    /// Members acknowledged.
    members: u64,
    /// What Facebook's receipts added up to.
    received: Received,
    /// Records read up to the last acknowledged batch.
    records: u64,
}

impl Terminal {
    fn new(estimate: Option<u64>) -> Terminal {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(estimate, ProgressDrawTarget::stderr());
            let template = if estimate.is_some() {
                "{spinner} [{bar:30}] {human_pos}/~{human_len} records · {msg} · {per_sec} · ETA {eta}"
            } else {
                "{spinner} {human_pos} records · {msg} · {per_sec} · {elapsed}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Terminal {
            bar,
            estimate,
            started: now,
            last_line: now,
            batches: 0,
            members: 0,
            received: Received::default(),
            records: 0,
        }
    }

    fn say(&self, line: &str) {
        say(self.bar.as_ref(), line);
    }

    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.records as f64 / secs
        } else {
            0.0
        }
    }

    fn update(&mut self) {
        let message = format!(
            "{} · {} members sent",
            crate::demo::counted(self.batches, "batch", "batches"),
            self.members
        );
        if let Some(bar) = &self.bar {
            if let Some(estimate) = self.estimate {
                bar.set_length(estimate.max(self.records));
            }
            bar.set_position(self.records);
            bar.set_message(message);
            return;
        }
        if self.last_line.elapsed() < PLAIN_EVERY {
            return;
        }
        self.last_line = Instant::now();
        let mut line = format!(
            "progress: {} records read, {message}, {:.0} records/s",
            self.records,
            self.rate()
        );
        if let Some(estimate) = self.estimate.filter(|e| *e > 0) {
            let share = (self.records as f64 / estimate as f64 * 100.0).min(100.0);
            line.push_str(&format!(", ~{share:.0}% of the file"));
            let rate = self.rate();
            if rate > 0.0 && estimate > self.records {
                let left = Duration::from_secs_f64((estimate - self.records) as f64 / rate);
                line.push_str(&format!(
                    ", ETA {}",
                    humantime::format_duration(Duration::from_secs(left.as_secs()))
                ));
            }
        }
        eprintln!("{line}");
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[async_trait::async_trait]
impl Progress for Terminal {
    async fn checkpoint(&mut self, checkpoint: &Checkpoint) -> facebook_connector_core::Result<()> {
        self.records = self.records.max(checkpoint.counters.records_read);
        self.update();
        Ok(())
    }

    fn acknowledged(&mut self, ack: &BatchAck) {
        self.batches += 1;
        self.members += ack.rows;
        self.received = self.received.plus(ack.added);
    }

    fn read(&mut self, _counts: &ReadCounts) {}
}

/// The summary printed at the end (stdout).
struct Report<'a> {
    file: &'a Path,
    target: &'a UploadTarget,
    audience_name: &'a str,
    progress: &'a Terminal,
    session_id: u64,
}

impl Report<'_> {
    fn delivered(&self, cp: &Checkpoint, summary: &ReadSummary) -> String {
        let mut s = format!(
            "delivered {} to audience {} ({:?}, ad account {})\n",
            self.file.display(),
            self.target.audience,
            self.audience_name,
            self.target.ad_account
        );
        self.counters(&mut s, cp, Some(summary));
        s
    }

    /// "3 batches of FILE were acknowledged", in agreement with the count.
    fn acknowledged(&self) -> String {
        let batches = self.progress.batches;
        format!(
            "{} of {} {} acknowledged",
            crate::demo::counted(batches, "batch", "batches"),
            self.file.display(),
            if batches == 1 { "was" } else { "were" }
        )
    }

    fn stopped(&self, cp: &Checkpoint) -> String {
        let mut s = format!(
            "stopped: {} before the interruption; the rest of the file was not sent\n",
            self.acknowledged()
        );
        self.counters(&mut s, cp, None);
        s.push_str("running `upload` again sends the whole file again, in a new upload session\n");
        s
    }

    fn failed(&self, cp: &Checkpoint) -> String {
        let mut s = format!("failed: {} before the error\n", self.acknowledged());
        self.counters(&mut s, cp, None);
        s
    }

    /// The counters up to the last acknowledged batch (with the rejected lines and fields of
    /// the whole file once it was read to the end), Facebook's receipts and the rate.
    fn counters(&self, s: &mut String, cp: &Checkpoint, read: Option<&ReadSummary>) {
        use std::fmt::Write as _;
        let c = &cp.counters;
        let elapsed = self.progress.started.elapsed();
        let _ = writeln!(
            s,
            "records read: {} ({} rejected lines, {} unmatchable)",
            c.records_read, c.rejected_lines, c.unmatchable
        );
        if let Some(read) = read {
            records::rejections(
                s,
                read.counts.rejected_lines,
                &read.rejected_line_numbers,
                &read.field_rejections,
            );
        }
        let _ = writeln!(
            s,
            "members sent: {} in {} (upload session {}{})",
            c.members_sent,
            crate::demo::counted(self.progress.batches, "batch", "batches"),
            self.session_id,
            if cp.session_index > 0 {
                format!(", continued in {} more", cp.session_index)
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "facebook received: {}", c.facebook_received);
        let _ = writeln!(s, "facebook invalid: {}", c.facebook_invalid);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            c.records_read as f64 / secs
        } else {
            0.0
        };
        let _ = writeln!(s, "time: {secs:.1} s ({rate:.0} records/s)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(wait: Option<Duration>) -> Error {
        Error::Throttled {
            retry_after: wait,
            source: "throttled".into(),
        }
    }

    #[test]
    fn only_rate_limits_and_outages_are_waited_out_a_few_times() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            wait_before_resuming(&throttled(Some(minute)), 1),
            Some(minute)
        );
        assert_eq!(
            wait_before_resuming(&throttled(Some(Duration::from_secs(3600))), 1),
            Some(MAX_WAIT),
            "never longer than MAX_WAIT"
        );
        let outage = Error::transient(std::io::Error::other("connection reset"));
        let waits: Vec<Option<Duration>> = (1..=MAX_WAITS + 1)
            .map(|n| wait_before_resuming(&outage, n))
            .collect();
        assert_eq!(
            waits,
            [15, 30, 60, 120, 240]
                .map(|s| Some(Duration::from_secs(s)))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        let refused = Error::Rejected {
            reason: "invalid schema".into(),
            source: None,
        };
        assert_eq!(wait_before_resuming(&refused, 1), None);
        let token = Error::InvalidToken {
            source: "expired".into(),
        };
        assert_eq!(wait_before_resuming(&token, 1), None);
    }

    #[test]
    fn the_record_estimate_counts_lines_of_small_files_and_scales_large_ones() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.jsonl");
        std::fs::write(&small, "{}\n{}\n{}").unwrap();
        assert_eq!(estimate_records(&small, 8), Some(3));
        let large = dir.path().join("large.jsonl");
        let line = format!("{{\"data\": {{\"raw_email\": \"{}\"}}}}\n", "a".repeat(40));
        let lines = (5 << 20) / line.len();
        std::fs::write(&large, line.repeat(lines)).unwrap();
        let size = std::fs::metadata(&large).unwrap().len();
        let estimate = estimate_records(&large, size).unwrap() as f64;
        assert!(
            (estimate / lines as f64 - 1.0).abs() < 0.01,
            "{estimate} vs {lines}"
        );
    }

    #[test]
    fn the_record_estimate_of_parquet_is_its_row_count() {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-0.parquet");
        let emails: ArrayRef = Arc::new(StringArray::from(vec!["a@x.org"; 1234]));
        let batch = RecordBatch::try_from_iter([("raw_email", emails)]).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(estimate_records(&path, size), Some(1234));
    }
}
