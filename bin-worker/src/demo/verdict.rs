//! The demo's verdict: what the scenario expects (from its seeding) against what the store
//! recorded and what the fake Graph API received. Pure, so a mismatching outcome is
//! unit-tested without running anything.

use std::collections::{BTreeMap, BTreeSet};

use facebook_connector_core::domain::{
    AudienceId, Command, DeliveryCounters, FileStatus, JobId, QueueStats, Revision, SettingsId,
};
use facebook_marketing::testkit::{FakeAudience, FakeSession};

use super::data::Expected;

/// Which file (as `deliveries` names it): its command's revision, its snapshot, its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    /// The command's revision.
    pub revision: Revision,
    /// The snapshot of a dataset file.
    pub snapshot: Option<String>,
    /// The file's name.
    pub name: String,
}

impl std::fmt::Display for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.snapshot {
            Some(snapshot) => write!(f, "{snapshot}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Where a delivery's members must end up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedAudience {
    /// A new audience with this name, created by the engine.
    Created {
        /// Its name.
        name: String,
    },
    /// An audience that existed before (named by quick settings).
    Existing {
        /// Its id.
        id: AudienceId,
        /// Its name.
        name: String,
    },
}

impl ExpectedAudience {
    /// The audience's name.
    pub fn name(&self) -> &str {
        match self {
            ExpectedAudience::Created { name } | ExpectedAudience::Existing { name, .. } => name,
        }
    }
}

/// One file a delivery must have.
#[derive(Clone, Debug)]
pub struct ExpectedFile {
    /// Which.
    pub key: FileKey,
    /// What it must become.
    pub expected: Expected,
}

/// One command the scenario's events must record.
#[derive(Clone, Debug)]
pub struct ExpectedDelivery {
    /// How the report names it (e.g. "subscription delivery").
    pub kind: String,
    /// The profile's name.
    pub profile_name: String,
    /// The command's revision.
    pub revision: Revision,
    /// Its target.
    pub settings_id: SettingsId,
    /// Where its members go.
    pub audience: ExpectedAudience,
    /// Its files, in the marketplace's order.
    pub files: Vec<ExpectedFile>,
}

/// The token Facebook revokes mid-file.
#[derive(Clone, Debug)]
pub struct ExpectedRevocation {
    /// The profile's name.
    pub profile_name: String,
    /// Batches acknowledged before the token is revoked.
    pub after_batches: u32,
}

/// Everything the scenario expects.
#[derive(Clone, Debug)]
pub struct Expectations {
    /// The commands and their files.
    pub deliveries: Vec<ExpectedDelivery>,
    /// Events that must record no command (a connection without historical data).
    pub quiet_revisions: Vec<Revision>,
    /// The revoked token.
    pub revocation: ExpectedRevocation,
    /// Members per upload batch.
    pub batch_size: u64,
    /// Batches in flight per file (a refused batch may be re-sent, at most these).
    pub uploads_in_flight: u64,
    /// How many audiences each ad account must hold at the end (created and pre-existing).
    pub audiences_per_ad_account: BTreeMap<String, usize>,
}

/// What the revoked profile went through, as the demo saw it in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PauseObserved {
    /// Batches acknowledged when the token was revoked.
    pub revoked_after: Option<u32>,
    /// The engine's pause reasons.
    pub pause_reasons: Vec<String>,
    /// The profile's delivery state once paused (`needs_reauth` expected).
    pub state_when_paused: Option<String>,
    /// Its jobs the store showed `paused` then.
    pub paused_jobs: u64,
    /// Whether it was re-authorised.
    pub reauthorized: bool,
    /// Jobs the re-authorisation resumed.
    pub resumed_jobs: u64,
    /// Its delivery state at the end (`ok` expected).
    pub final_state: Option<String>,
}

/// What the run left behind.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The store's commands.
    pub commands: Vec<Command>,
    /// The audience each target's settings point to.
    pub settings: BTreeMap<SettingsId, AudienceId>,
    /// Every audience of the scenario's ad accounts, as the fake holds it.
    pub audiences: Vec<FakeAudience>,
    /// Each job's first upload session, as the fake holds it.
    pub sessions: BTreeMap<JobId, FakeSession>,
    /// The revoked profile.
    pub pause: PauseObserved,
    /// Open jobs when the run was cut short.
    pub timed_out: Option<QueueStats>,
}

/// One way the outcome differs from the scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The file it is about, if any.
    pub file: Option<FileKey>,
    /// What differs, in words.
    pub what: String,
}

impl Difference {
    fn of(file: &FileKey, what: String) -> Difference {
        Difference {
            file: Some(file.clone()),
            what: format!("{file}: {what}"),
        }
    }

    fn general(what: String) -> Difference {
        Difference { file: None, what }
    }
}

/// A member's e-mail hashes as the fake received them, sorted (one per row).
pub fn received_emails(audience: &FakeAudience) -> Vec<String> {
    let mut emails = Vec::new();
    for batch in &audience.batches {
        let column = batch.schema.iter().position(|k| k == "EMAIL");
        for row in &batch.rows {
            let value = column.and_then(|c| row.get(c)).cloned().unwrap_or_default();
            emails.push(value);
        }
    }
    emails.sort();
    emails
}

fn expected_counters(e: &Expected) -> DeliveryCounters {
    DeliveryCounters {
        records_read: e.records,
        rejected_lines: e.rejected,
        unmatchable: e.unmatchable,
        members_sent: e.members,
        facebook_received: e.members,
        facebook_invalid: 0,
    }
}

fn counter_differences(got: &DeliveryCounters, want: &DeliveryCounters) -> Vec<String> {
    let fields = [
        ("records", got.records_read, want.records_read),
        ("rejected lines", got.rejected_lines, want.rejected_lines),
        ("unmatchable", got.unmatchable, want.unmatchable),
        ("members sent", got.members_sent, want.members_sent),
        (
            "facebook received",
            got.facebook_received,
            want.facebook_received,
        ),
        (
            "facebook invalid",
            got.facebook_invalid,
            want.facebook_invalid,
        ),
    ];
    fields
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(name, got, want)| format!("{name} {got}, expected {want}"))
        .collect()
}

/// Every difference between the scenario and the outcome; empty when it ended as expected.
pub fn differences(expect: &Expectations, seen: &Observed) -> Vec<Difference> {
    let mut out = Vec::new();
    if let Some(open) = &seen.timed_out {
        out.push(Difference::general(format!(
            "the run did not finish in time: {} queued, {} running, {} paused",
            open.queued, open.running, open.paused
        )));
    }
    let commands: BTreeMap<Revision, &Command> =
        seen.commands.iter().map(|c| (c.revision, c)).collect();
    for revision in &expect.quiet_revisions {
        if commands.contains_key(revision) {
            out.push(Difference::general(format!(
                "revision {revision} recorded a command; a connection without historical data delivers nothing"
            )));
        }
    }
    let known: BTreeSet<Revision> = expect.deliveries.iter().map(|d| d.revision).collect();
    for command in &seen.commands {
        if !known.contains(&command.revision) {
            out.push(Difference::general(format!(
                "an unexpected command at revision {}",
                command.revision
            )));
        }
    }
    // members per target, from the seeding
    let mut wanted_emails: BTreeMap<SettingsId, Vec<String>> = BTreeMap::new();
    let mut audiences: BTreeMap<SettingsId, &ExpectedAudience> = BTreeMap::new();
    for delivery in &expect.deliveries {
        audiences.insert(delivery.settings_id, &delivery.audience);
        let emails = wanted_emails.entry(delivery.settings_id).or_default();
        for file in &delivery.files {
            emails.extend(file.expected.email_hashes.iter().cloned());
        }
        let Some(command) = commands.get(&delivery.revision) else {
            out.push(Difference::general(format!(
                "no command recorded for revision {} ({})",
                delivery.revision, delivery.kind
            )));
            continue;
        };
        if command.settings_id != delivery.settings_id {
            out.push(Difference::general(format!(
                "revision {} went to {}, expected {}",
                delivery.revision, command.settings_id, delivery.settings_id
            )));
        }
        file_differences(expect, seen, delivery, command, &mut out);
    }
    for (settings_id, expected) in &audiences {
        audience_differences(seen, settings_id, expected, &wanted_emails, &mut out);
    }
    for (ad_account, count) in &expect.audiences_per_ad_account {
        let got = seen
            .audiences
            .iter()
            .filter(|a| a.ad_account.as_str() == ad_account)
            .count();
        if got != *count {
            out.push(Difference::general(format!(
                "ad account {ad_account} holds {got} audiences, expected {count} (one per target)"
            )));
        }
    }
    revocation_differences(expect, &seen.pause, &mut out);
    out
}

fn file_differences(
    expect: &Expectations,
    seen: &Observed,
    delivery: &ExpectedDelivery,
    command: &Command,
    out: &mut Vec<Difference>,
) {
    let wanted: BTreeSet<FileKey> = delivery.files.iter().map(|f| f.key.clone()).collect();
    for file in &command.files {
        let key = key_of(command.revision, file);
        if !wanted.contains(&key) {
            out.push(Difference::of(
                &key,
                "a file the scenario did not deliver here".into(),
            ));
        }
    }
    for file in &delivery.files {
        let Some(recorded) = command
            .files
            .iter()
            .find(|f| key_of(command.revision, f) == file.key)
        else {
            out.push(Difference::of(&file.key, "missing from its command".into()));
            continue;
        };
        if recorded.status != FileStatus::Delivered {
            let reason = recorded
                .status
                .reason()
                .or(recorded.last_error.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push(Difference::of(
                &file.key,
                format!("{}{reason}, expected delivered", recorded.status.as_str()),
            ));
        }
        for what in counter_differences(&recorded.counters, &expected_counters(&file.expected)) {
            out.push(Difference::of(&file.key, what));
        }
        let batches = file.expected.members.div_ceil(expect.batch_size.max(1));
        match seen.sessions.get(&recorded.job_id) {
            None if batches > 0 => out.push(Difference::of(
                &file.key,
                "facebook saw no upload session".into(),
            )),
            None => {}
            Some(session) => {
                let want: Vec<u32> = (1..=batches as u32).collect();
                if session.batches_seen != want {
                    out.push(Difference::of(
                        &file.key,
                        format!(
                            "facebook stored batches {:?}, expected 1..={batches}",
                            session.batches_seen
                        ),
                    ));
                }
                if !session.closed {
                    out.push(Difference::of(
                        &file.key,
                        "its upload session was never closed by a last batch".into(),
                    ));
                }
                if session.num_received != recorded.counters.facebook_received {
                    out.push(Difference::of(
                        &file.key,
                        format!(
                            "facebook's session received {}, the store says {}",
                            session.num_received, recorded.counters.facebook_received
                        ),
                    ));
                }
                let most = batches as usize + expect.uploads_in_flight as usize;
                if session.upload_calls > most {
                    out.push(Difference::of(
                        &file.key,
                        format!(
                            "{} upload calls for {batches} batches: acknowledged batches were sent again",
                            session.upload_calls
                        ),
                    ));
                }
            }
        }
    }
}

fn audience_differences(
    seen: &Observed,
    settings_id: &SettingsId,
    expected: &ExpectedAudience,
    wanted_emails: &BTreeMap<SettingsId, Vec<String>>,
    out: &mut Vec<Difference>,
) {
    // an audience named by quick settings is used as it is, without settings of its own
    let audience_id = match (seen.settings.get(settings_id), expected) {
        (Some(id), ExpectedAudience::Existing { id: want, .. }) if id != want => {
            out.push(Difference::general(format!(
                "{settings_id} went to audience {id}, expected the existing {want}"
            )));
            id
        }
        (Some(id), _) => id,
        (None, ExpectedAudience::Existing { id, .. }) => id,
        (None, ExpectedAudience::Created { .. }) => {
            out.push(Difference::general(format!(
                "no audience recorded for {settings_id}"
            )));
            return;
        }
    };
    let Some(audience) = seen.audiences.iter().find(|a| &a.id == audience_id) else {
        out.push(Difference::general(format!(
            "audience {audience_id} of {settings_id} does not exist on facebook"
        )));
        return;
    };
    if audience.name != expected.name() {
        out.push(Difference::general(format!(
            "audience {audience_id} is named {:?}, expected {:?}",
            audience.name,
            expected.name()
        )));
    }
    let mut want = wanted_emails.get(settings_id).cloned().unwrap_or_default();
    want.sort();
    let got = received_emails(audience);
    if got != want {
        let got_set: BTreeSet<&String> = got.iter().collect();
        let want_set: BTreeSet<&String> = want.iter().collect();
        let missing = want_set.difference(&got_set).count();
        let unexpected = got_set.difference(&want_set).count();
        let duplicates = got.len() - got_set.len();
        out.push(Difference::general(format!(
            "audience {:?} holds {} members, expected {} ({missing} missing, {unexpected} unexpected, {duplicates} duplicates)",
            audience.name,
            got.len(),
            want.len()
        )));
    }
}

fn revocation_differences(expect: &Expectations, pause: &PauseObserved, out: &mut Vec<Difference>) {
    let who = &expect.revocation.profile_name;
    match pause.revoked_after {
        None => out.push(Difference::general(format!(
            "{who}'s token was never revoked (the file had fewer than {} batches?)",
            expect.revocation.after_batches
        ))),
        Some(_) => {
            if pause.pause_reasons.is_empty() {
                out.push(Difference::general(format!(
                    "{who}'s job never paused after its token was revoked"
                )));
            }
            if pause.state_when_paused.as_deref() != Some("needs_reauth") {
                out.push(Difference::general(format!(
                    "{who}'s profile was {} while its job was paused, expected needs_reauth",
                    pause.state_when_paused.as_deref().unwrap_or("never seen")
                )));
            }
            if pause.paused_jobs == 0 {
                out.push(Difference::general(format!(
                    "the store showed none of {who}'s jobs paused"
                )));
            }
            if !pause.reauthorized {
                out.push(Difference::general(format!(
                    "{who} was never re-authorised"
                )));
            }
        }
    }
    if pause.final_state.as_deref() != Some("ok") {
        out.push(Difference::general(format!(
            "{who}'s profile ended {}, expected ok",
            pause.final_state.as_deref().unwrap_or("missing")
        )));
    }
}

/// The key of a recorded file.
pub fn key_of(revision: Revision, file: &facebook_connector_core::domain::CommandFile) -> FileKey {
    FileKey {
        revision,
        snapshot: crate::deliveries::snapshot_id(&file.file).map(str::to_owned),
        name: file.file.file().as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use facebook_connector_core::domain::{
        CommandFile, DeliveryEvent, FileName, FileRef, ProfileId, QuickSettings, SubscriptionId,
        TransactionBatchId,
    };
    use facebook_marketing::testkit::StoredBatch;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::super::data::sha256_hex;
    use super::*;

    const ACCOUNT: &str = "act_100";

    /// A scenario of one delivery of one file (7 lines: 1 malformed, 1 unmatchable, 5
    /// members in batches of 2), a revocation, and an outcome that matches it.
    fn scenario() -> (Expectations, Observed) {
        let profile = ProfileId(Uuid::new_v4());
        let subscription_id = SubscriptionId(Uuid::new_v4());
        let settings_id = SettingsId::Subscription {
            profile_id: profile,
            subscription_id,
        };
        let revision = Revision(1);
        let mut emails: Vec<String> = (0..5)
            .map(|i| sha256_hex(&format!("m{i}@example.com")))
            .collect();
        emails.sort();
        let expected = Expected {
            records: 7,
            rejected: 1,
            unmatchable: 1,
            members: 5,
            email_hashes: emails.clone(),
        };
        let key = FileKey {
            revision,
            snapshot: None,
            name: "part-0.jsonl".into(),
        };
        let expect = Expectations {
            deliveries: vec![ExpectedDelivery {
                kind: "subscription delivery".into(),
                profile_name: "Acme".into(),
                revision,
                settings_id,
                audience: ExpectedAudience::Created {
                    name: "Acme audience".into(),
                },
                files: vec![ExpectedFile { key, expected }],
            }],
            quiet_revisions: vec![Revision(2)],
            revocation: ExpectedRevocation {
                profile_name: "Acme".into(),
                after_batches: 1,
            },
            batch_size: 2,
            uploads_in_flight: 2,
            audiences_per_ad_account: BTreeMap::from([(ACCOUNT.to_owned(), 1)]),
        };
        let job_id = JobId::new_v7();
        let now = OffsetDateTime::now_utc();
        let command = Command {
            revision,
            event: DeliveryEvent::SubscriptionDelivery {
                profile_id: profile,
                subscription_id,
                transaction_batch_id: TransactionBatchId(Uuid::new_v4()),
                quick_settings: QuickSettings::default(),
            },
            settings_id,
            files: vec![CommandFile {
                file: FileRef::Legacy {
                    revision,
                    file: FileName::new("part-0.jsonl").unwrap(),
                },
                status: FileStatus::Delivered,
                counters: DeliveryCounters {
                    records_read: 7,
                    rejected_lines: 1,
                    unmatchable: 1,
                    members_sent: 5,
                    facebook_received: 5,
                    facebook_invalid: 0,
                },
                job_id,
                attempts: 2,
                last_error: None,
            }],
            created_at: now,
            updated_at: now,
        };
        let audience_id = AudienceId::parse("2384000").unwrap();
        let batch = |seq: u32, rows: &[String]| StoredBatch {
            session_id: Some(job_id.upload_session_id(0)),
            batch_seq: Some(seq),
            schema: vec!["EMAIL".into(), "FN".into()],
            rows: rows
                .iter()
                .map(|e| vec![e.clone(), String::new()])
                .collect(),
            num_invalid_entries: 0,
        };
        let audience = FakeAudience {
            id: audience_id.clone(),
            ad_account: facebook_connector_core::domain::AdAccountId::parse(ACCOUNT).unwrap(),
            name: "Acme audience".into(),
            description: String::new(),
            batches: vec![
                batch(1, &emails[0..2]),
                batch(2, &emails[2..4]),
                batch(3, &emails[4..5]),
            ],
            removals: Vec::new(),
        };
        let session = FakeSession {
            audience_id: audience_id.clone(),
            batches_seen: vec![1, 2, 3],
            num_received: 5,
            num_invalid_entries: 0,
            closed: true,
            expired: false,
            upload_calls: 4,
            estimated_num_total: None,
        };
        let seen = Observed {
            commands: vec![command],
            settings: BTreeMap::from([(settings_id, audience_id)]),
            audiences: vec![audience],
            sessions: BTreeMap::from([(job_id, session)]),
            pause: PauseObserved {
                revoked_after: Some(1),
                pause_reasons: vec!["token is invalid".into()],
                state_when_paused: Some("needs_reauth".into()),
                paused_jobs: 1,
                reauthorized: true,
                resumed_jobs: 1,
                final_state: Some("ok".into()),
            },
            timed_out: None,
        };
        (expect, seen)
    }

    fn whats(d: &[Difference]) -> Vec<String> {
        d.iter().map(|d| d.what.clone()).collect()
    }

    #[test]
    fn an_outcome_as_seeded_has_no_difference() {
        let (expect, seen) = scenario();
        assert_eq!(whats(&differences(&expect, &seen)), Vec::<String>::new());
    }

    #[test]
    fn wrong_counters_and_status_are_differences_of_their_file() {
        let (expect, mut seen) = scenario();
        let file = &mut seen.commands[0].files[0];
        file.counters.rejected_lines = 0;
        file.counters.facebook_invalid = 1;
        file.status = FileStatus::Failed {
            reason: "facebook refused the batch".into(),
        };
        let found = differences(&expect, &seen);
        assert_eq!(
            whats(&found),
            [
                "part-0.jsonl: failed (facebook refused the batch), expected delivered",
                "part-0.jsonl: rejected lines 0, expected 1",
                "part-0.jsonl: facebook invalid 1, expected 0",
            ]
        );
        assert!(found.iter().all(|d| d.file.is_some()));
    }

    #[test]
    fn a_member_missing_or_sent_twice_is_a_difference() {
        let (expect, mut seen) = scenario();
        let twice = seen.audiences[0].batches[0].rows[0].clone();
        seen.audiences[0].batches[2].rows[0] = twice;
        let found = whats(&differences(&expect, &seen)).join("\n");
        assert!(
            found.contains("holds 5 members, expected 5 (1 missing, 0 unexpected, 1 duplicates)"),
            "{found}"
        );
    }

    #[test]
    fn resent_acknowledged_batches_and_an_open_session_are_differences() {
        let (expect, mut seen) = scenario();
        let session = seen.sessions.values_mut().next().unwrap();
        session.upload_calls = 9;
        session.closed = false;
        let found = whats(&differences(&expect, &seen)).join("\n");
        assert!(found.contains("never closed"), "{found}");
        assert!(found.contains("9 upload calls for 3 batches"), "{found}");
    }

    #[test]
    fn a_revocation_that_never_paused_or_resumed_is_a_difference() {
        let (expect, mut seen) = scenario();
        seen.pause = PauseObserved {
            revoked_after: Some(1),
            final_state: Some("needs_reauth".into()),
            ..PauseObserved::default()
        };
        let found = whats(&differences(&expect, &seen));
        assert_eq!(
            found,
            [
                "Acme's job never paused after its token was revoked",
                "Acme's profile was never seen while its job was paused, expected needs_reauth",
                "the store showed none of Acme's jobs paused",
                "Acme was never re-authorised",
                "Acme's profile ended needs_reauth, expected ok",
            ]
        );
    }

    #[test]
    fn missing_and_unexpected_commands_and_audiences_are_differences() {
        let (expect, mut seen) = scenario();
        let mut quiet = seen.commands[0].clone();
        quiet.revision = Revision(2);
        quiet.files.clear();
        seen.commands = vec![quiet];
        seen.settings.clear();
        seen.timed_out = Some(QueueStats {
            queued: 1,
            ..QueueStats::default()
        });
        let found = whats(&differences(&expect, &seen));
        assert_eq!(
            found,
            [
                "the run did not finish in time: 1 queued, 0 running, 0 paused",
                "revision 2 recorded a command; a connection without historical data delivers nothing",
                "an unexpected command at revision 2",
                "no command recorded for revision 1 (subscription delivery)",
                format!(
                    "no audience recorded for {}",
                    expect.deliveries[0].settings_id
                )
                .as_str(),
            ]
        );
    }
}
