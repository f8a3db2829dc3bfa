//! The upload pipeline against a recording sink that checks Facebook's session rules.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::{AdAccountId, Audience, AudienceId, Checkpoint, JobId, Received, RecordFormat};
use crate::error::{Error, Result};
use crate::normalize::ParserConfig;
use crate::payload::Payload;
use crate::ports::{AudienceSink, TokioClock, UploadOutcome, UploadSession, UploadTarget};

use super::pipeline::{BatchAck, Control, FileUpload, Outcome, Progress};

/// One `add_members` call as the sink saw it.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub session_id: u64,
    pub batch_seq: u32,
    pub last: bool,
    pub rows: Vec<String>,
}

/// What the sink answers to a call, scripted by (session_id, batch_seq) or in call order.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    Fail(fn() -> Error),
    Expired,
}

#[derive(Default)]
struct Session {
    received: u64,
    acked: BTreeSet<u32>,
    in_flight: BTreeSet<u32>,
    finished: bool,
}

#[derive(Default)]
pub(crate) struct SinkState {
    pub calls: Vec<Call>,
    pub violations: Vec<String>,
    pub max_in_flight: usize,
    in_flight: usize,
    sessions: HashMap<u64, Session>,
    /// Rows Facebook holds (unique).
    pub rows: BTreeSet<String>,
}

/// An audience sink that keeps what it received, answers running totals per session like
/// Facebook, and records every break of the session rules.
#[derive(Default)]
pub(crate) struct RecordingSink {
    pub state: Mutex<SinkState>,
    pub latency: Duration,
    /// Answers for the n-th call (1-based), instead of accepting.
    pub script: Mutex<BTreeMap<usize, Answer>>,
    /// Answers taken in order for calls of this batch_seq (any session).
    pub by_seq: Mutex<HashMap<u32, VecDeque<Answer>>>,
}

impl RecordingSink {
    pub(crate) fn with_latency(latency: Duration) -> RecordingSink {
        RecordingSink {
            latency,
            ..RecordingSink::default()
        }
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap()
    }
}

fn rows_of(payload: &Payload) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(&payload.to_json()).unwrap();
    value["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.to_string())
        .collect()
}

#[async_trait]
impl AudienceSink for RecordingSink {
    async fn find_audiences(&self, _: &SecretString, ids: &[AudienceId]) -> Result<Vec<Audience>> {
        Ok(ids
            .iter()
            .map(|id| Audience {
                id: id.clone(),
                name: "a".into(),
            })
            .collect())
    }

    async fn create_audience(
        &self,
        _: &SecretString,
        _: &AdAccountId,
        name: &str,
        _: &str,
    ) -> Result<Audience> {
        Ok(Audience {
            id: AudienceId::parse("900").unwrap(),
            name: name.into(),
        })
    }

    async fn add_members(
        &self,
        _: &SecretString,
        _: &UploadTarget,
        payload: &Payload,
        session: &UploadSession,
    ) -> Result<UploadOutcome> {
        let rows = rows_of(payload);
        let n = {
            let mut s = self.state();
            s.calls.push(Call {
                session_id: session.session_id,
                batch_seq: session.batch_seq,
                last: session.last_batch,
                rows: rows.clone(),
            });
            let n = s.calls.len();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            let mut violations = Vec::new();
            let sess = s.sessions.entry(session.session_id).or_default();
            if session.batch_seq == 1 && !sess.in_flight.is_empty() {
                violations.push(format!("batch 1 sent with {:?} in flight", sess.in_flight));
            }
            if session.batch_seq > 1 && !sess.acked.contains(&1) {
                violations.push(format!(
                    "batch {} sent before batch 1 was acknowledged",
                    session.batch_seq
                ));
            }
            if session.last_batch && !sess.in_flight.is_empty() {
                violations.push(format!(
                    "last batch {} sent with {:?} in flight",
                    session.batch_seq, sess.in_flight
                ));
            }
            if session.last_batch && (1..session.batch_seq).any(|seq| !sess.acked.contains(&seq)) {
                violations.push(format!(
                    "last batch {} sent before every earlier one was acknowledged",
                    session.batch_seq
                ));
            }
            sess.in_flight.insert(session.batch_seq);
            s.violations.extend(violations);
            n
        };
        tokio::time::sleep(self.latency).await;
        let scripted = self.script.lock().unwrap().remove(&n).or_else(|| {
            self.by_seq
                .lock()
                .unwrap()
                .get_mut(&session.batch_seq)
                .and_then(VecDeque::pop_front)
        });
        let mut s = self.state();
        s.in_flight -= 1;
        let finished = {
            let sess = s.sessions.entry(session.session_id).or_default();
            sess.in_flight.remove(&session.batch_seq);
            sess.finished
        };
        match scripted {
            Some(Answer::Fail(error)) => return Err(error()),
            Some(Answer::Expired) => return Ok(UploadOutcome::SessionExpired),
            None => {}
        }
        if finished {
            return Ok(UploadOutcome::SessionFinished);
        }
        let new_rows: Vec<String> = rows
            .iter()
            .filter(|r| !s.rows.contains(*r))
            .cloned()
            .collect();
        let sess = s.sessions.entry(session.session_id).or_default();
        if sess.acked.insert(session.batch_seq) {
            sess.received += rows.len() as u64;
        }
        if session.last_batch {
            sess.finished = true;
        }
        let received = sess.received;
        s.rows.extend(new_rows);
        Ok(UploadOutcome::Accepted(Received {
            received,
            invalid: 0,
        }))
    }

    async fn remove_members(
        &self,
        _: &SecretString,
        _: &UploadTarget,
        _: &Payload,
    ) -> Result<Received> {
        Ok(Received::default())
    }
}

/// Remembers every checkpoint handed to it; can fail the n-th one.
#[derive(Default)]
pub(crate) struct Recorder {
    pub checkpoints: Vec<Checkpoint>,
    pub acks: Vec<BatchAck>,
    /// "read" when a batch reached the uploader, "ack" when one was acknowledged.
    pub events: Vec<&'static str>,
    pub fail_at: Option<usize>,
    /// Cancels this token after the n-th checkpoint (a crash right after it).
    pub abort_after: Option<(usize, Control)>,
}

#[async_trait]
impl Progress for Recorder {
    async fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.checkpoints.push(*checkpoint);
        if self.fail_at == Some(self.checkpoints.len()) {
            return Err(Error::transient(std::io::Error::other("database gone")));
        }
        if let Some((n, control)) = &self.abort_after
            && *n == self.checkpoints.len()
        {
            control.abort.cancel();
        }
        Ok(())
    }

    fn acknowledged(&mut self, ack: &BatchAck) {
        self.acks.push(*ack);
        self.events.push("ack");
    }

    fn read(&mut self, _counts: &super::pipeline::ReadCounts) {
        self.events.push("read");
    }
}

/// A legacy JSON-lines file: `n` records with an email each, `rejected` malformed lines at the
/// given positions and an unmatchable record every 10th line.
pub(crate) fn legacy_file(n: usize, rejected: &[usize]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    for i in 1..=n {
        if rejected.contains(&i) {
            writeln!(file, "{{not json").unwrap();
        } else if i % 10 == 0 {
            writeln!(file, r#"{{"data": {{"iso_3166_1_country": "US"}}}}"#).unwrap();
        } else {
            writeln!(
                file,
                r#"{{"data": {{"raw_email": "user{i}@example.com"}}}}"#
            )
            .unwrap();
        }
    }
    file.flush().unwrap();
    file
}

pub(crate) fn upload(
    sink: Arc<RecordingSink>,
    job: JobId,
    batch: usize,
    in_flight: usize,
) -> FileUpload {
    FileUpload {
        sink,
        clock: Arc::new(TokioClock::new()),
        token: SecretString::from("token".to_owned()),
        target: UploadTarget {
            ad_account: AdAccountId::parse("act_1").unwrap(),
            audience: AudienceId::parse("900").unwrap(),
        },
        job_id: job,
        batch_size: batch,
        uploads_in_flight: in_flight,
        session_max_age: Duration::from_secs(80 * 60),
        read_ahead: true,
    }
}

async fn run(
    up: &FileUpload,
    file: &tempfile::NamedTempFile,
    start: Checkpoint,
    progress: &mut Recorder,
    control: &Control,
) -> Outcome {
    up.run(
        file.path().to_path_buf(),
        RecordFormat::Legacy,
        ParserConfig::default(),
        start,
        progress,
        control,
    )
    .await
}

fn delivered(outcome: Outcome) -> Checkpoint {
    match outcome {
        Outcome::Delivered { checkpoint, .. } => checkpoint,
        other => panic!("expected delivered, got {other:?}"),
    }
}

// Real time here: on tokio's paused clock every upload would finish while the reader thread
// prepares the next batch, so uploads would never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_in_one_session_in_full_batches_with_the_session_rules() {
    // 2,500 lines: 2 rejected, 250 unmatchable → 2,248 members → batches of 100: 23 calls
    let file = legacy_file(2_500, &[7, 1_234]);
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(100)));
    let job = JobId::new_v7();
    let up = upload(sink.clone(), job, 100, 3);
    let mut progress = Recorder::default();
    let cp = delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut progress,
            &Control::default(),
        )
        .await,
    );

    let s = sink.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(
        s.calls.len(),
        23,
        "exactly ceil(members / batch size) calls"
    );
    assert!(
        s.calls
            .iter()
            .all(|c| c.session_id == job.upload_session_id(0))
    );
    let seqs: Vec<u32> = s.calls.iter().map(|c| c.batch_seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=23).collect::<Vec<_>>());
    assert!(
        s.calls[..22].iter().all(|c| c.rows.len() == 100 && !c.last),
        "full batches but the last"
    );
    assert!(s.calls[22].last && s.calls[22].rows.len() == 48);
    assert_eq!(s.max_in_flight, 3, "uploads overlap up to the limit");
    assert_eq!(s.rows.len(), 2_248);

    assert_eq!(cp.counters.records_read, 2_500);
    assert_eq!(cp.counters.rejected_lines, 2);
    assert_eq!(cp.counters.unmatchable, 250);
    assert_eq!(cp.counters.members_sent, 2_248);
    assert_eq!(cp.counters.facebook_received, 2_248);
    assert_eq!(cp.batches_acknowledged, 23);
    // the prefix only grows, one checkpoint per advance (plus the final one)
    let prefixes: Vec<u32> = progress
        .checkpoints
        .iter()
        .map(|c| c.batches_acknowledged)
        .collect();
    assert!(prefixes.windows(2).all(|w| w[0] <= w[1]), "{prefixes:?}");
    assert_eq!(progress.acks.iter().map(|a| a.rows).sum::<u64>(), 2_248);
}

// Real time (see above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_read_ahead_one_batch_at_a_time() {
    let file = legacy_file(1_000, &[]);
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(20)));
    let job = JobId::new_v7();
    let mut up = upload(sink.clone(), job, 100, 4);
    up.uploads_in_flight = 1;
    up.read_ahead = false;
    let mut progress = Recorder::default();
    let cp = delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut progress,
            &Control::default(),
        )
        .await,
    );
    assert_eq!(cp.counters.members_sent, 900);
    {
        let s = sink.state();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert_eq!(s.max_in_flight, 1);
        assert_eq!(s.calls.len(), 9);
    }
    // each batch is read only after the previous one was acknowledged
    let expected: Vec<&str> = std::iter::repeat_n(["read", "ack"], 9).flatten().collect();
    assert_eq!(progress.events, expected);
    // with read-ahead, the next batch is already there while one uploads
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(20)));
    let mut up = upload(sink, job, 100, 1);
    up.read_ahead = true;
    let mut ahead = Recorder::default();
    delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut ahead,
            &Control::default(),
        )
        .await,
    );
    assert_ne!(ahead.events, expected);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_file_sends_no_acknowledged_batch_again_in_the_same_session() {
    let file = legacy_file(1_000, &[]);
    let job = JobId::new_v7();
    // first run: stopped right after the 4th checkpoint (a crash)
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(10)));
    let up = upload(sink.clone(), job, 50, 2);
    let control = Control::default();
    let mut first = Recorder {
        abort_after: Some((4, control.clone())),
        ..Recorder::default()
    };
    let outcome = run(&up, &file, Checkpoint::start(job), &mut first, &control).await;
    let stored = match outcome {
        Outcome::Stopped { .. } => *first.checkpoints.last().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stored.batches_acknowledged, 4);
    let sent_first: BTreeSet<u32> = sink.state().calls.iter().map(|c| c.batch_seq).collect();

    // second run from the stored checkpoint, same sink (Facebook keeps the session)
    let mut second = Recorder::default();
    let cp = delivered(run(&up, &file, stored, &mut second, &Control::default()).await);
    let s = sink.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    let resent: Vec<u32> = s.calls[sent_first.len()..]
        .iter()
        .map(|c| c.batch_seq)
        .collect();
    assert!(
        resent.iter().all(|seq| *seq > 4),
        "acknowledged batches re-sent: {resent:?}"
    );
    // duplicates at most the batches that were in flight at the crash
    let dup = resent.iter().filter(|seq| sent_first.contains(seq)).count();
    assert!(dup <= 2, "{dup} duplicates");
    assert!(
        s.calls
            .iter()
            .all(|c| c.session_id == job.upload_session_id(0))
    );
    assert_eq!(s.rows.len(), 900);
    assert_eq!(cp.counters.members_sent, 900);
    assert_eq!(cp.counters.records_read, 1_000);
    assert_eq!(cp.counters.facebook_received, 900);
}

#[tokio::test(start_paused = true)]
async fn a_re_sent_last_batch_of_a_finished_session_counts_as_acknowledged() {
    let file = legacy_file(300, &[]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink.clone(), job, 100, 2);
    let cp = delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut Recorder::default(),
            &Control::default(),
        )
        .await,
    );
    assert_eq!(cp.batches_acknowledged, 3);
    // the crash happened after Facebook processed the last batch, before the checkpoint
    let mut before_last = cp;
    before_last.batches_acknowledged = 2;
    before_last.counters.members_sent = 200;
    let cp = delivered(
        run(
            &up,
            &file,
            before_last,
            &mut Recorder::default(),
            &Control::default(),
        )
        .await,
    );
    let s = sink.state();
    assert_eq!(s.calls.len(), 4, "only the last batch again");
    assert!(s.calls[3].last && s.calls[3].batch_seq == 3);
    assert_eq!(cp.batches_acknowledged, 3);
    assert_eq!(cp.counters.members_sent, 270);
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_moves_the_rest_of_the_file_to_a_new_one() {
    let file = legacy_file(1_000, &[]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(10)));
    sink.script.lock().unwrap().insert(6, Answer::Expired);
    let up = upload(sink.clone(), job, 100, 2);
    let mut progress = Recorder::default();
    let cp = delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut progress,
            &Control::default(),
        )
        .await,
    );
    let s = sink.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(cp.session_index, 1);
    assert_eq!(cp.session_id, job.upload_session_id(1));
    assert_eq!(s.rows.len(), 900, "every member reached the audience");
    assert_eq!(cp.counters.members_sent, 900);
    let second: Vec<&Call> = s
        .calls
        .iter()
        .filter(|c| c.session_id == job.upload_session_id(1))
        .collect();
    assert_eq!(second[0].batch_seq, 1);
    assert!(second.last().unwrap().last);
}

#[tokio::test(start_paused = true)]
async fn a_session_too_old_to_continue_is_replaced_on_resume() {
    let file = legacy_file(400, &[]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink.clone(), job, 100, 2);
    let clock = TokioClock::new();
    let mut stored = Checkpoint::start(job);
    stored.batches_acknowledged = 2;
    stored.counters.members_sent = 180;
    stored.session_started_at =
        Some(crate::ports::Clock::now(&clock) - Duration::from_secs(85 * 60));
    let cp = delivered(
        run(
            &up,
            &file,
            stored,
            &mut Recorder::default(),
            &Control::default(),
        )
        .await,
    );
    let s = sink.state();
    assert!(
        s.calls
            .iter()
            .all(|c| c.session_id == job.upload_session_id(1))
    );
    assert_eq!(s.calls[0].batch_seq, 1);
    assert_eq!(cp.counters.members_sent, 360);
}

#[tokio::test(start_paused = true)]
async fn an_error_mid_file_keeps_the_acknowledged_prefix() {
    let file = legacy_file(1_000, &[]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::with_latency(Duration::from_millis(10)));
    sink.by_seq.lock().unwrap().insert(
        5,
        VecDeque::from([Answer::Fail(|| Error::Throttled {
            retry_after: Some(Duration::from_secs(60)),
            source: "throttled".into(),
        })]),
    );
    let up = upload(sink.clone(), job, 100, 2);
    let mut progress = Recorder::default();
    match run(
        &up,
        &file,
        Checkpoint::start(job),
        &mut progress,
        &Control::default(),
    )
    .await
    {
        Outcome::Failed { checkpoint, error } => {
            assert!(matches!(error, Error::Throttled { .. }));
            assert!(checkpoint.batches_acknowledged >= 4, "{checkpoint:?}");
            assert_eq!(
                progress.checkpoints.last().unwrap().batches_acknowledged,
                checkpoint.batches_acknowledged
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.state().violations.is_empty());
}

// Real time (see above): batch 1 is answered after 1 s, batches 2 and 3 are in flight from
// then until 2 s, and the stop comes at 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_in_flight_batches_finish_and_an_abort_does_not() {
    let file = legacy_file(2_000, &[]);
    let job = JobId::new_v7();
    for abort in [false, true] {
        let sink = Arc::new(RecordingSink::with_latency(Duration::from_secs(1)));
        let up = upload(sink.clone(), job, 100, 2);
        let control = Control::default();
        let stopper = {
            let control = control.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                control.stop.cancel();
                if abort {
                    control.abort.cancel();
                }
            })
        };
        let mut progress = Recorder::default();
        let outcome = run(&up, &file, Checkpoint::start(job), &mut progress, &control).await;
        stopper.await.unwrap();
        let Outcome::Stopped { checkpoint } = outcome else {
            panic!("{outcome:?}");
        };
        let calls = sink.state().calls.len() as u32;
        assert_eq!(calls, 3, "batch 1, then two in flight when the stop came");
        if abort {
            assert_eq!(
                checkpoint.batches_acknowledged, 1,
                "in-flight batches abandoned"
            );
        } else {
            assert_eq!(
                checkpoint.batches_acknowledged, 3,
                "in-flight batches finished"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_checkpoint_stops_the_upload() {
    let file = legacy_file(1_000, &[]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink.clone(), job, 100, 2);
    let mut progress = Recorder {
        fail_at: Some(2),
        ..Recorder::default()
    };
    let outcome = run(
        &up,
        &file,
        Checkpoint::start(job),
        &mut progress,
        &Control::default(),
    )
    .await;
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
    assert!(sink.state().calls.len() < 9);
}

#[tokio::test(start_paused = true)]
async fn an_empty_or_unmatchable_file_sends_nothing() {
    let file = legacy_file(9, &[3]);
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink.clone(), job, 100, 2);
    // 8 good lines but none at position 10: all sendable
    let cp = delivered(
        run(
            &up,
            &file,
            Checkpoint::start(job),
            &mut Recorder::default(),
            &Control::default(),
        )
        .await,
    );
    assert_eq!(cp.counters.members_sent, 8);
    let mut empty = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    writeln!(empty, r#"{{"data": {{"iso_3166_1_country": "US"}}}}"#).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink.clone(), job, 100, 2);
    let cp = delivered(
        run(
            &up,
            &empty,
            Checkpoint::start(job),
            &mut Recorder::default(),
            &Control::default(),
        )
        .await,
    );
    assert_eq!(sink.state().calls.len(), 0);
    assert_eq!(cp.counters.unmatchable, 1);
    assert_eq!(cp.counters.records_read, 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_file_fails_with_a_read_error() {
    let mut file = tempfile::Builder::new()
        .suffix(".parquet")
        .tempfile()
        .unwrap();
    writeln!(file, "not parquet at all").unwrap();
    let job = JobId::new_v7();
    let sink = Arc::new(RecordingSink::default());
    let up = upload(sink, job, 100, 2);
    let outcome = up
        .run(
            file.path().to_path_buf(),
            RecordFormat::Dataset,
            ParserConfig::default(),
            Checkpoint::start(job),
            &mut Recorder::default(),
            &Control::default(),
        )
        .await;
    match outcome {
        Outcome::Failed { error, .. } => {
            assert_eq!(error.disposition(), crate::Disposition::FailFile, "{error}");
        }
        other => panic!("{other:?}"),
    }
}
