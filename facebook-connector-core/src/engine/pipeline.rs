//! One file into one audience: the reader on a blocking thread cuts the records into batches,
//! the uploader sends them in one Facebook upload session and reports every advance of the
//! acknowledged prefix, so that the caller can make it durable.
//!
//! ```text
//!  blocking thread                         async task
//!  RecordReader → PayloadBuilder ──mpsc(1)──► uploader ──spawn──► AudienceSink::add_members
//!  (skips members already sent)               │  batch 1 alone, then ≤ in_flight at once,
//!                                             │  the last-flag batch only after every other
//!                                             └► Progress::checkpoint (acknowledged prefix)
//! ```
//!
//! Memory is bounded whatever the file size: the batches in flight, the one batch the reader
//! holds back until it knows whether another follows (so the uploader learns which batch is
//! the last without reading ahead), one in the channel and the one being built.
//!
//! Used by the job runner (the progress goes to the job queue) and by the worker's `upload`
//! command (it goes to the terminal); both get the same batching, session and retry rules.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::{Checkpoint, JobId, Received, RecordFormat};
use crate::error::{Error, Result};
use crate::normalize::ParserConfig;
use crate::payload::{Payload, PayloadBuilder};
use crate::ports::{AudienceSink, Clock, UploadOutcome, UploadSession, UploadTarget};
use crate::source::{ParseStats, RecordReader, RecordSource};

use super::metrics;

/// Session replacements in a row without an acknowledged batch before the file fails.
const MAX_FRUITLESS_ROLLOVERS: u32 = 3;

/// What the reader had counted when it cut a batch (whole file so far).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Records read: lines or rows, rejected lines included.
    pub records_read: u64,
    /// Lines that were not a JSON object.
    pub rejected_lines: u64,
    /// Records without EMAIL, PHONE, MADID or FN+LN.
    pub unmatchable: u64,
}

impl ReadCounts {
    fn of(stats: &ParseStats) -> ReadCounts {
        ReadCounts {
            records_read: stats.records() + stats.rejected_lines(),
            rejected_lines: stats.rejected_lines(),
            unmatchable: stats.unmatchable(),
        }
    }
}

/// What the reader found in the whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// The final counts.
    pub counts: ReadCounts,
    /// Sendable members in the file (those skipped on a resume included).
    pub members: u64,
    /// Line numbers of the first rejected lines.
    pub rejected_line_numbers: Vec<u64>,
    /// Rejected values per field.
    pub field_rejections: BTreeMap<&'static str, u64>,
}

/// One batch as the reader cut it.
#[derive(Debug)]
struct Batch {
    payload: Payload,
    /// No batch follows.
    last: bool,
    /// Counts when the batch was cut.
    cut: ReadCounts,
}

enum ReaderMsg {
    Batch(Batch),
    Done(ReadSummary),
    Failed(Error),
}

/// Receives the uploader's progress.
#[async_trait]
pub trait Progress: Send {
    /// The acknowledged prefix advanced, or the session changed: make `checkpoint` durable.
    /// An error stops the upload (in-flight batches still finish).
    async fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()>;

    /// One batch was acknowledged (already part of the checkpoint passed next).
    fn acknowledged(&mut self, _ack: &BatchAck) {}

    /// The reader got this far (called about every batch).
    fn read(&mut self, _counts: &ReadCounts) {}
}

/// One acknowledged batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchAck {
    /// Its `batch_seq` in its session.
    pub batch_seq: u32,
    /// Rows it carried.
    pub rows: u64,
    /// What it added to Facebook's running totals of the session.
    pub added: Received,
    /// Whether it had the last-batch flag.
    pub last: bool,
}

/// How the uploader is asked to stop early.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// Stop soon: send no new batch, let the in-flight ones finish and report their
    /// acknowledgement (shutdown, a paused profile).
    pub stop: CancellationToken,
    /// Stop now: abandon the in-flight batches (the lease was lost).
    pub abort: CancellationToken,
}

/// How one file ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every batch was acknowledged; `checkpoint.counters` are the file's final counters.
    Delivered {
        /// The final state.
        checkpoint: Checkpoint,
        /// What the reader found.
        summary: ReadSummary,
    },
    /// Stopped on request; `checkpoint` is the last state handed to [`Progress::checkpoint`].
    Stopped {
        /// Where it got to.
        checkpoint: Checkpoint,
    },
    /// A read or upload error; the batches acknowledged before it are in `checkpoint`.
    Failed {
        /// Where it got to.
        checkpoint: Checkpoint,
        /// The first error.
        error: Error,
    },
}

/// The upload of one file; see the module docs.
#[derive(Clone)]
pub struct FileUpload {
    /// Where members go.
    pub sink: Arc<dyn AudienceSink>,
    /// Time, for the age of sessions.
    pub clock: Arc<dyn Clock>,
    /// The user token of the audience's ad account.
    pub token: SecretString,
    /// The audience and its ad account.
    pub target: UploadTarget,
    /// Upload sessions are derived from this id ([`JobId::upload_session_id`]).
    pub job_id: JobId,
    /// Members per batch (≤ 10,000).
    pub batch_size: usize,
    /// Batches in flight at once (≥ 1).
    pub uploads_in_flight: usize,
    /// Sessions older than this are replaced (see `EngineConfig::session_max_age`).
    pub session_max_age: Duration,
    /// Read the next batch while earlier ones upload (the default). Off, a batch is read only
    /// once the previous one was acknowledged: the original connector's one-thing-at-a-time
    /// design, kept for benchmarks.
    pub read_ahead: bool,
}

impl std::fmt::Debug for FileUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("target", &self.target)
            .field("job_id", &self.job_id)
            .field("batch_size", &self.batch_size)
            .field("uploads_in_flight", &self.uploads_in_flight)
            .field("read_ahead", &self.read_ahead)
            .finish_non_exhaustive()
    }
}

type Sent = (u32, Batch, Result<UploadOutcome>);

impl FileUpload {
    /// Uploads the file at `path` from `start` (a fresh [`Checkpoint::start`] or the job's
    /// stored checkpoint: the first `start.counters.members_sent` sendable members are skipped
    /// and the session continues at `batch_seq = start.batches_acknowledged + 1`).
    pub async fn run(
        &self,
        path: PathBuf,
        format: RecordFormat,
        parser: ParserConfig,
        start: Checkpoint,
        progress: &mut dyn Progress,
        control: &Control,
    ) -> Outcome {
        let mut up = Uploader::new(self, start);
        let (tx, rx) = mpsc::channel(1);
        let skip = up.cp.counters.members_sent;
        let batch_size = self.batch_size;
        let (demand_tx, demand_rx) = std::sync::mpsc::channel();
        let demand = (!self.read_ahead).then_some(demand_rx);
        up.demand = (!self.read_ahead).then_some(demand_tx);
        // A thread of its own rather than tokio's blocking pool: it lives as long as the
        // upload, mostly waiting for the uploader, and keeps parsing off the async runtime.
        // (It also leaves tokio's paused clock free to advance in tests, which a long
        // `spawn_blocking` task would hold back.)
        let spawned = std::thread::Builder::new()
            .name("fbc-record-reader".into())
            .spawn(move || read_batches(&path, format, parser, batch_size, skip, &tx, demand));
        if let Err(e) = spawned {
            return Outcome::Failed {
                checkpoint: up.cp,
                error: Error::transient(e),
            };
        }
        // the reader stops at its next send once the receiver is dropped
        up.drive(rx, progress, control).await
    }
}

/// The uploader's state.
struct Uploader<'a> {
    file: &'a FileUpload,
    /// The durable state (as last handed to the progress) plus what is acknowledged since.
    cp: Checkpoint,
    next_seq: u32,
    /// When the current session's batch 1 was sent.
    session_sent_at: Option<time::OffsetDateTime>,
    held: Option<Batch>,
    resend: VecDeque<Batch>,
    ahead: BTreeMap<u32, (Batch, Option<Received>)>,
    in_flight: JoinSet<Sent>,
    rollover: bool,
    fruitless_rollovers: u32,
    summary: Option<ReadSummary>,
    failure: Option<Error>,
    last_counts: ReadCounts,
    /// Without read-ahead: asks the reader for the next batch.
    demand: Option<std::sync::mpsc::Sender<()>>,
    /// Without read-ahead: a batch was asked for and has not arrived.
    asked: bool,
}

impl<'a> Uploader<'a> {
    fn new(file: &'a FileUpload, start: Checkpoint) -> Uploader<'a> {
        let mut cp = start;
        if cp.session_id == 0 {
            cp.session_id = file.job_id.upload_session_id(cp.session_index);
        }
        Uploader {
            file,
            next_seq: cp.batches_acknowledged + 1,
            session_sent_at: cp.session_started_at,
            last_counts: ReadCounts {
                records_read: cp.counters.records_read,
                rejected_lines: cp.counters.rejected_lines,
                unmatchable: cp.counters.unmatchable,
            },
            cp,
            held: None,
            resend: VecDeque::new(),
            ahead: BTreeMap::new(),
            in_flight: JoinSet::new(),
            rollover: false,
            fruitless_rollovers: 0,
            summary: None,
            failure: None,
            demand: None,
            asked: false,
        }
    }

    fn session_too_old(&self) -> bool {
        let Some(started) = self.session_sent_at else {
            return false;
        };
        let age = self.file.clock.now() - started;
        age > self.file.session_max_age
    }

    async fn drive(
        &mut self,
        mut rx: mpsc::Receiver<ReaderMsg>,
        progress: &mut dyn Progress,
        control: &Control,
    ) -> Outcome {
        // a resumed session that Facebook no longer accepts batches for: start the next one
        if self.cp.batches_acknowledged > 0 && self.session_too_old() {
            self.rollover = true;
        }
        loop {
            if control.abort.is_cancelled() {
                self.in_flight.abort_all();
                return Outcome::Stopped {
                    checkpoint: self.cp,
                };
            }
            let stopping = control.stop.is_cancelled() || self.failure.is_some();
            if self.rollover && self.in_flight.is_empty() && !stopping {
                self.start_next_session(progress).await;
                continue;
            }
            if !stopping && !self.rollover && self.try_send() {
                continue;
            }
            if self.in_flight.is_empty() {
                if let Some(error) = self.failure.take() {
                    return Outcome::Failed {
                        checkpoint: self.cp,
                        error,
                    };
                }
                if stopping {
                    return Outcome::Stopped {
                        checkpoint: self.cp,
                    };
                }
                if self.held.is_none()
                    && self.resend.is_empty()
                    && let Some(summary) = self.summary.take()
                {
                    return self.finish(summary, progress).await;
                }
            }
            let want_batch = self.held.is_none() && self.summary.is_none() && !stopping;
            if want_batch
                && !self.asked
                && self.in_flight.is_empty()
                && let Some(demand) = &self.demand
            {
                // without read-ahead the next batch is read only now (a gone reader shows as
                // a closed channel below)
                let _ = demand.send(());
                self.asked = true;
            }
            tokio::select! {
                biased;
                () = control.abort.cancelled() => {}
                () = control.stop.cancelled(), if !control.stop.is_cancelled() => {}
                joined = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match joined {
                        Some(Ok(sent)) => self.on_answer(sent, progress).await,
                        Some(Err(join)) if join.is_cancelled() => {}
                        Some(Err(join)) => {
                            self.failure.get_or_insert(Error::Invariant {
                                what: format!("an upload task failed: {join}"),
                            });
                        }
                        None => {}
                    }
                }
                msg = rx.recv(), if want_batch => match msg {
                    Some(ReaderMsg::Batch(batch)) => {
                        self.asked = false;
                        progress.read(&batch.cut);
                        self.held = Some(batch);
                    }
                    Some(ReaderMsg::Done(summary)) => self.summary = Some(summary),
                    Some(ReaderMsg::Failed(error)) => {
                        self.failure.get_or_insert(error);
                    }
                    None => {
                        self.failure.get_or_insert(Error::Invariant {
                            what: "the record reader stopped without an answer".into(),
                        });
                    }
                },
            }
        }
    }

    /// Sends the next batch if the session rules allow it now.
    fn try_send(&mut self) -> bool {
        let candidate = self.resend.front().or(self.held.as_ref());
        let Some(batch) = candidate else {
            return false;
        };
        let first = self.next_seq == 1;
        let allowed = if first || batch.last {
            // batch 1 alone; the last only once every earlier batch is acknowledged
            self.in_flight.is_empty()
        } else {
            self.in_flight.len() < self.file.uploads_in_flight.max(1)
                && self.cp.batches_acknowledged >= 1
        };
        if !allowed {
            return false;
        }
        if !first && self.session_too_old() {
            self.rollover = true;
            return false;
        }
        let batch = match self.resend.pop_front() {
            Some(batch) => {
                metrics::batch_retried();
                batch
            }
            None => match self.held.take() {
                Some(batch) => batch,
                None => return false,
            },
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        if first {
            self.session_sent_at = Some(self.file.clock.now());
        }
        let session = UploadSession {
            session_id: self.cp.session_id,
            batch_seq: seq,
            last_batch: batch.last,
            estimated_num_total: None,
        };
        let sink = self.file.sink.clone();
        let token = self.file.token.clone();
        let target = self.file.target.clone();
        self.in_flight.spawn(async move {
            let started = tokio::time::Instant::now();
            let answer = sink
                .add_members(&token, &target, &batch.payload, &session)
                .await;
            metrics::upload_duration(started.elapsed());
            (seq, batch, answer)
        });
        true
    }

    async fn on_answer(&mut self, (seq, batch, answer): Sent, progress: &mut dyn Progress) {
        match answer {
            Ok(UploadOutcome::Accepted(totals)) => {
                self.ahead.insert(seq, (batch, Some(totals)));
            }
            Ok(UploadOutcome::SessionFinished) if batch.last => {
                // a re-sent last batch: the earlier send was processed, Facebook holds it all
                tracing::info!(
                    session_id = self.cp.session_id,
                    batch_seq = seq,
                    "facebook had already finished the session: the last batch counts as acknowledged"
                );
                self.ahead.insert(seq, (batch, None));
            }
            Ok(UploadOutcome::SessionFinished | UploadOutcome::SessionExpired) => {
                tracing::warn!(
                    session_id = self.cp.session_id,
                    batch_seq = seq,
                    "facebook no longer accepts batches in this session: the rest of the file goes into a new one"
                );
                self.resend.push_back(batch);
                self.rollover = true;
            }
            Err(error) => {
                metrics::batch_failed();
                self.failure.get_or_insert(error);
            }
        }
        self.advance(progress).await;
    }

    /// Moves acknowledged batches into the prefix and makes it durable.
    async fn advance(&mut self, progress: &mut dyn Progress) {
        let mut advanced = false;
        while let Some((batch, totals)) = self.ahead.remove(&(self.cp.batches_acknowledged + 1)) {
            self.cp.batches_acknowledged += 1;
            if self.cp.batches_acknowledged == 1 {
                self.cp.session_started_at = self.session_sent_at;
            }
            let rows = batch.payload.len() as u64;
            self.cp.counters.members_sent += rows;
            self.count_read(batch.cut);
            let added = totals.map(|t| self.cp.absorb_totals(t)).unwrap_or_default();
            metrics::batch_acknowledged(rows);
            progress.acknowledged(&BatchAck {
                batch_seq: self.cp.batches_acknowledged,
                rows,
                added,
                last: batch.last,
            });
            advanced = true;
        }
        if advanced {
            self.fruitless_rollovers = 0;
            if let Err(error) = progress.checkpoint(&self.cp).await {
                self.failure.get_or_insert(error);
            }
        }
    }

    /// Counts the reader's progress into the checkpoint and the records metric.
    fn count_read(&mut self, counts: ReadCounts) {
        if counts.records_read < self.last_counts.records_read {
            return;
        }
        metrics::records_read(&self.last_counts, &counts);
        self.last_counts = counts;
        self.cp.counters.records_read = counts.records_read;
        self.cp.counters.rejected_lines = counts.rejected_lines;
        self.cp.counters.unmatchable = counts.unmatchable;
    }

    /// Ends the current session and resends what it did not take in the next one.
    async fn start_next_session(&mut self, progress: &mut dyn Progress) {
        self.rollover = false;
        self.fruitless_rollovers += 1;
        if self.fruitless_rollovers > MAX_FRUITLESS_ROLLOVERS {
            self.failure.get_or_insert(Error::Rejected {
                reason: format!(
                    "facebook refused {MAX_FRUITLESS_ROLLOVERS} upload sessions in a row for this file"
                ),
                source: None,
            });
            return;
        }
        // batches acknowledged beyond a refused one go again, in order, in the new session
        let ahead = std::mem::take(&mut self.ahead);
        let mut again: Vec<Batch> = ahead.into_values().map(|(batch, _)| batch).collect();
        again.extend(self.resend.drain(..));
        again.sort_by_key(|b| b.cut.records_read);
        self.resend = again.into();
        let previous = self.cp.session_id;
        self.cp.next_session(self.file.job_id);
        self.next_seq = 1;
        self.session_sent_at = None;
        tracing::info!(
            previous_session_id = previous,
            session_id = self.cp.session_id,
            session_index = self.cp.session_index,
            "starting a new upload session"
        );
        if let Err(error) = progress.checkpoint(&self.cp).await {
            self.failure.get_or_insert(error);
        }
    }

    async fn finish(&mut self, summary: ReadSummary, progress: &mut dyn Progress) -> Outcome {
        self.count_read(summary.counts);
        if let Err(error) = progress.checkpoint(&self.cp).await {
            return Outcome::Failed {
                checkpoint: self.cp,
                error,
            };
        }
        Outcome::Delivered {
            checkpoint: self.cp,
            summary,
        }
    }
}

/// The reader: opens the file, skips `skip` sendable members, and sends batches (each one
/// held back until the next member or the end shows whether it is the last). With `demand`,
/// it starts each batch only when the uploader asks for one.
fn read_batches(
    path: &std::path::Path,
    format: RecordFormat,
    parser: ParserConfig,
    batch_size: usize,
    skip: u64,
    tx: &mpsc::Sender<ReaderMsg>,
    demand: Option<std::sync::mpsc::Receiver<()>>,
) {
    let send = |msg: ReaderMsg| tx.blocking_send(msg).is_ok();
    let asked = || demand.as_ref().is_none_or(|d| d.recv().is_ok());
    if !asked() {
        return;
    }
    let mut reader = match RecordReader::open(path, format, parser) {
        Ok(reader) => reader,
        Err(error) => {
            send(ReaderMsg::Failed(error));
            return;
        }
    };
    let mut builder = match PayloadBuilder::new(batch_size) {
        Ok(builder) => builder,
        Err(error) => {
            send(ReaderMsg::Failed(error.into()));
            return;
        }
    };
    let mut skipped = 0u64;
    let mut members = 0u64;
    let mut ready: Option<(Payload, ReadCounts)> = None;
    loop {
        let full = {
            let Some(record) = reader.next_record() else {
                break;
            };
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    send(ReaderMsg::Failed(error));
                    return;
                }
            };
            match &record.member {
                Some(member) if member.is_matchable() => {
                    members += 1;
                    if skipped < skip {
                        skipped += 1;
                        None
                    } else {
                        if let Some((payload, cut)) = ready.take()
                            && !(send(ReaderMsg::Batch(Batch {
                                payload,
                                last: false,
                                cut,
                            })) && asked())
                        {
                            return;
                        }
                        builder.push(member)
                    }
                }
                _ => None,
            }
        };
        if let Some(payload) = full {
            ready = Some((payload, ReadCounts::of(reader.stats())));
        }
    }
    let stats = reader.stats();
    let counts = ReadCounts::of(stats);
    let last = match (ready, builder.finish()) {
        (Some((payload, _)), None) | (None, Some(payload)) => Some(payload),
        (Some((payload, cut)), Some(tail)) => {
            // not reached (a member after a full batch sends it), kept for safety
            if !send(ReaderMsg::Batch(Batch {
                payload,
                last: false,
                cut,
            })) {
                return;
            }
            Some(tail)
        }
        (None, None) => None,
    };
    if let Some(payload) = last
        && !send(ReaderMsg::Batch(Batch {
            payload,
            last: true,
            cut: counts,
        }))
    {
        return;
    }
    send(ReaderMsg::Done(ReadSummary {
        counts,
        members,
        rejected_line_numbers: stats.rejected_line_numbers().to_vec(),
        field_rejections: stats.field_rejection_counts(),
    }));
}
