//! The demo's report (stdout): profiles, every delivery's files with the store's counters and
//! the verdict's check, the audiences, the revocation's pause and resume, totals, the verdict,
//! and how to look further.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::progress::Moment;
use super::scenario::DemoProfile;
use super::verdict::{
    Difference, Expectations, ExpectedAudience, FileKey, Observed, key_of, received_emails,
};

/// What the report tells.
#[derive(Debug)]
pub struct Report<'a> {
    /// The scenario's profiles.
    pub profiles: &'a [DemoProfile],
    /// What it expected.
    pub expect: &'a Expectations,
    /// What happened.
    pub seen: &'a Observed,
    /// The moments of the revocation.
    pub moments: &'a [Moment],
    /// The verdict.
    pub differences: &'a [Difference],
    /// Seeding the fakes and creating the profiles.
    pub seeding: Duration,
    /// From the engine's start until every job was finished.
    pub delivery: Duration,
    /// Batches Facebook acknowledged.
    pub batches: u64,
    /// Where the database is kept (`--keep`), if it is.
    pub kept: Option<&'a Path>,
}

/// `12345678` as `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 batch`, `2 batches`: a count with its noun.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

const COLUMNS: [&str; 9] = [
    "FILE",
    "STATUS",
    "RECORDS",
    "REJECTED",
    "UNMATCHABLE",
    "SENT",
    "FB RECEIVED",
    "FB INVALID",
    "CHECK",
];

fn table(out: &mut String, rows: &[[String; 9]]) {
    let mut widths = [0usize; 9];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from("    ");
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else if (2..=7).contains(&i) {
                let _ = write!(line, "{cell:>w$}  ", w = widths[i]);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

impl Report<'_> {
    /// The report's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "facebook-connector demo: the real engine, store (SQLite) and API clients, against an \
             in-process marketplace and Graph API"
        );
        self.profiles_section(&mut out);
        self.deliveries_section(&mut out);
        self.audiences_section(&mut out);
        self.revocation_section(&mut out);
        self.totals_section(&mut out);
        self.verdict_section(&mut out);
        self.further_section(&mut out);
        out
    }

    fn profiles_section(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nprofiles (created and enabled by the code behind POST /profiles and .../enable)"
        );
        let width = self
            .profiles
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0);
        for p in self.profiles {
            let expiry = p
                .token_expires_in_days
                .map_or("never expires".to_owned(), |d| {
                    format!("expires in {d} days")
                });
            let _ = writeln!(
                out,
                "  {:<width$}  {}  {}  ad account {}  long-lived token, {expiry}",
                p.name, p.id, p.status, p.ad_account
            );
        }
    }

    fn deliveries_section(&self, out: &mut String) {
        let _ = writeln!(out, "\ndeliveries (the store's counters per file)");
        for delivery in &self.expect.deliveries {
            let _ = writeln!(
                out,
                "  revision {}  {}  {} → audience \"{}\"",
                delivery.revision,
                delivery.kind,
                delivery.profile_name,
                delivery.audience.name()
            );
            let command = self
                .seen
                .commands
                .iter()
                .find(|c| c.revision == delivery.revision);
            let mut rows = vec![COLUMNS.map(str::to_owned)];
            for file in &delivery.files {
                let recorded = command
                    .and_then(|c| c.files.iter().find(|f| key_of(c.revision, f) == file.key));
                let check = self.check(&file.key);
                rows.push(match recorded {
                    Some(f) => {
                        let c = &f.counters;
                        [
                            file.key.to_string(),
                            f.status.as_str().to_owned(),
                            thousands(c.records_read),
                            thousands(c.rejected_lines),
                            thousands(c.unmatchable),
                            thousands(c.members_sent),
                            thousands(c.facebook_received),
                            thousands(c.facebook_invalid),
                            check,
                        ]
                    }
                    None => {
                        let mut row = COLUMNS.map(|_| "-".to_owned());
                        row[0] = file.key.to_string();
                        row[1] = "missing".into();
                        row[8] = check;
                        row
                    }
                });
            }
            table(out, &rows);
        }
        if !self.expect.quiet_revisions.is_empty() {
            let revisions: Vec<String> = self
                .expect
                .quiet_revisions
                .iter()
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(
                out,
                "  revision {}  connection created without historical data: nothing to deliver",
                revisions.join(", ")
            );
        }
    }

    fn check(&self, key: &FileKey) -> String {
        let n = self
            .differences
            .iter()
            .filter(|d| d.file.as_ref() == Some(key))
            .count();
        match n {
            0 => "ok".into(),
            1 => "1 difference".into(),
            n => format!("{n} differences"),
        }
    }

    fn audiences_section(&self, out: &mut String) {
        let _ = writeln!(out, "\naudiences (as the fake Graph API holds them)");
        let mut rows: Vec<(String, String, String, String, &str)> = Vec::new();
        for delivery in &self.expect.deliveries {
            let id = match (
                &delivery.audience,
                self.seen.settings.get(&delivery.settings_id),
            ) {
                (_, Some(id)) | (ExpectedAudience::Existing { id, .. }, None) => id,
                (ExpectedAudience::Created { .. }, None) => continue,
            };
            if rows.iter().any(|r| r.1 == id.as_str()) {
                continue;
            }
            let Some(audience) = self.seen.audiences.iter().find(|a| &a.id == id) else {
                continue;
            };
            let how = match delivery.audience {
                ExpectedAudience::Created { .. } => "created by the engine",
                ExpectedAudience::Existing { .. } => "existing, named by quick settings",
            };
            rows.push((
                format!("\"{}\"", audience.name),
                audience.id.as_str().to_owned(),
                audience.ad_account.as_str().to_owned(),
                thousands(received_emails(audience).len() as u64),
                how,
            ));
        }
        let w = |f: fn(&(String, String, String, String, &str)) -> usize| {
            rows.iter().map(f).max().unwrap_or(0)
        };
        let (w0, w1, w2, w3) = (
            w(|r| r.0.chars().count()),
            w(|r| r.1.len()),
            w(|r| r.2.len()),
            w(|r| r.3.len()),
        );
        for (name, id, account, members, how) in &rows {
            let _ = writeln!(
                out,
                "  {name:<w0$}  {id:<w1$}  {account:<w2$}  {members:>w3$} members  {how}"
            );
        }
    }

    fn revocation_section(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\ntoken revoked mid-file: pause and resume ({}; seconds since the engine started)",
            self.expect.revocation.profile_name
        );
        if self.moments.is_empty() {
            let _ = writeln!(out, "  nothing happened");
        }
        for m in self.moments {
            let _ = writeln!(out, "  {:>6.2}s  {}", m.at.as_secs_f64(), m.what);
        }
    }

    fn totals_section(&self, out: &mut String) {
        let files = self.expect.deliveries.iter().flat_map(|d| d.files.iter());
        let recorded = self.seen.commands.iter().flat_map(|c| c.files.iter());
        let (mut records, mut rejected, mut unmatchable, mut sent) = (0, 0, 0, 0);
        for f in recorded {
            records += f.counters.records_read;
            rejected += f.counters.rejected_lines;
            unmatchable += f.counters.unmatchable;
            sent += f.counters.members_sent;
        }
        let secs = self.delivery.as_secs_f64();
        let rate = if secs > 0.0 {
            records as f64 / secs
        } else {
            0.0
        };
        let _ = writeln!(out, "\ntotal");
        let _ = writeln!(
            out,
            "  {} files, {} records ({} rejected lines, {} unmatchable), {} members sent in {}",
            files.count(),
            thousands(records),
            thousands(rejected),
            thousands(unmatchable),
            thousands(sent),
            counted(self.batches, "batch", "batches")
        );
        let _ = writeln!(
            out,
            "  delivered in {secs:.2} s ({} records/s); seeding {:.2} s; total {:.2} s",
            thousands(rate as u64),
            self.seeding.as_secs_f64(),
            (self.seeding + self.delivery).as_secs_f64()
        );
    }

    fn verdict_section(&self, out: &mut String) {
        if self.differences.is_empty() {
            let files: usize = self.expect.deliveries.iter().map(|d| d.files.len()).sum();
            let _ = writeln!(
                out,
                "\nverdict: every delivery ended as the scenario expects\n  \
                 {} commands, {files} files delivered with the counts they were seeded with;\n  \
                 each audience holds exactly its seeded members (by e-mail SHA-256), each once;\n  \
                 every upload session closed, no acknowledged batch sent again;\n  \
                 the revoked profile paused, was re-authorised and finished",
                self.expect.deliveries.len()
            );
            return;
        }
        let n = self.differences.len();
        let _ = writeln!(
            out,
            "\nverdict: {n} difference{} from the scenario:",
            if n == 1 { "" } else { "s" }
        );
        for d in self.differences {
            let _ = writeln!(out, "  - {}", d.what);
        }
    }

    fn further_section(&self, out: &mut String) {
        let _ = writeln!(out, "\nlook further");
        match self.kept {
            Some(dir) => {
                let url = format!("sqlite://{}", dir.join(super::DATABASE_FILE).display());
                let _ = writeln!(out, "  the database is kept in {}:", dir.display());
                let _ = writeln!(
                    out,
                    "    facebook-connector-worker deliveries --database-url {url}"
                );
                let _ = writeln!(
                    out,
                    "    facebook-connector-worker deliveries --database-url {url} --revision {} --json",
                    self.expect.deliveries.first().map_or(1, |d| d.revision.0)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  the database was in a temporary directory, now removed; to keep it:"
                );
                let _ = writeln!(out, "    facebook-connector-worker demo --keep ./demo-db");
                let _ = writeln!(
                    out,
                    "    facebook-connector-worker deliveries --database-url sqlite://./demo-db/{}",
                    super::DATABASE_FILE
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(counted(1, "batch", "batches"), "1 batch");
        assert_eq!(counted(0, "batch", "batches"), "0 batches");
        assert_eq!(counted(2, "batch", "batches"), "2 batches");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(103_150), "103,150");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
