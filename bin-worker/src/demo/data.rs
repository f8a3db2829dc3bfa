//! The demo's files, with what each one must become known *by construction*: every record is
//! drawn from the benchmarks' seeded generator (realistic names, phones, addresses, MADIDs,
//! non-ASCII text and JSON escapes) and then made either matchable — it gets a unique e-mail
//! address and no other e-mail source — or unmatchable — every identifier is removed. Malformed
//! lines are inserted at known places. So the expected counts and the SHA-256 of every
//! member's e-mail address come from the seeding, not from the parser under test.

use std::path::Path;

use facebook_connector_testdata::{GeneratedRecord, Rng, json_lines, write_parquet};
use sha2::{Digest, Sha256};

/// How a file is generated.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    /// Seed of the generator (also makes the e-mail addresses unique across files).
    pub seed: u64,
    /// Records (JSON objects or Parquet rows), malformed lines not included.
    pub records: usize,
    /// Unmatchable records per thousand.
    pub unmatchable_per_mille: usize,
    /// Lines that are not a JSON object, spread over the file (JSON lines only).
    pub malformed: usize,
}

/// What a file must become, from its seeding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Lines or rows, malformed lines included.
    pub records: u64,
    /// Malformed lines.
    pub rejected: u64,
    /// Records without any identifier.
    pub unmatchable: u64,
    /// Members to send (every other record; each has a unique e-mail address).
    pub members: u64,
    /// SHA-256 (hex) of each member's normalized e-mail address, sorted.
    pub email_hashes: Vec<String>,
}

/// A seeded file.
#[derive(Clone, Debug)]
pub struct SeededFile {
    /// Its name in the marketplace.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// What it must become.
    pub expected: Expected,
}

/// ASCII local parts, so the expected normalization (trim, lowercase) is unambiguous.
const FIRST: &[&str] = &[
    "john", "mary", "jose", "zoe", "lukasz", "soren", "ana", "chloe", "bjorn", "mohammed", "yuki",
    "wei", "siobhan", "emile", "grace", "omar",
];
const LAST: &[&str] = &[
    "smith",
    "garcia",
    "muller",
    "nowak",
    "dupont",
    "oneil",
    "vandenberg",
    "ibanez",
    "nguyen",
    "bronte",
    "hakansson",
    "okafor",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "shop.example.co.uk",
];
/// What malformed lines look like in real deliveries: truncated writes, stray arrays, log
/// noise.
const MALFORMED: &[&str] = &[
    r#"{"data": {"raw_email": "trunc"#,
    "[1, 2, 3]",
    "ERROR 2026-12-01T23:59:59Z export interrupted",
    r#"{"data": {"person_name": {"given_name": "Ann""#,
    r#""just a string""#,
];

/// The records of a file and what they must become.
fn records(spec: &FileSpec) -> (Vec<GeneratedRecord>, Expected) {
    let mut rng = Rng::new(spec.seed);
    let mut expected = Expected::default();
    let mut records = Vec::with_capacity(spec.records);
    for i in 0..spec.records {
        let mut record = GeneratedRecord::random(&mut rng);
        if rng.below(1000) < spec.unmatchable_per_mille {
            make_unmatchable(&mut record);
            expected.unmatchable += 1;
        } else {
            let email = email(&mut rng, spec.seed, i);
            expected
                .email_hashes
                .push(sha256_hex(&email.trim().to_ascii_lowercase()));
            make_matchable(&mut record, email);
            expected.members += 1;
        }
        records.push(record);
    }
    expected.records = spec.records as u64;
    expected.email_hashes.sort();
    (records, expected)
}

/// A unique address, written the way customers' systems write them: sometimes capitalised,
/// sometimes with surrounding spaces.
fn email(rng: &mut Rng, seed: u64, i: usize) -> String {
    let address = format!(
        "{}.{}.{seed}x{i}@{}",
        rng.pick(FIRST),
        rng.pick(LAST),
        rng.pick(DOMAINS)
    );
    let address = if rng.chance(20) {
        let mut chars = address.chars();
        chars
            .next()
            .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    } else if rng.chance(10) {
        address.to_ascii_uppercase()
    } else {
        address
    };
    if rng.chance(10) {
        format!("  {address} ")
    } else {
        address
    }
}

/// Keeps the generated attributes but makes the e-mail address the member's only e-mail
/// source (phones, MADIDs and names stay: they are extra keys of the same member).
fn make_matchable(record: &mut GeneratedRecord, email: String) {
    record.raw_email = Some(email);
    record.hashed_email = None;
    if record
        .unique_id
        .as_ref()
        .is_some_and(|(kind, _)| kind != "idfa")
    {
        record.unique_id = None;
    }
}

/// Removes every identifier (EMAIL, PHONE, MADID, and LN so FN+LN cannot match either).
fn make_unmatchable(record: &mut GeneratedRecord) {
    record.raw_email = None;
    record.hashed_email = None;
    record.telephone = None;
    record.unique_id = None;
    record.family_name = None;
    let nothing_left = record.given_name.is_none()
        && record.gender.is_none()
        && record.birthdate.is_none()
        && record.birth_year.is_none()
        && record.country.is_none()
        && record.city.is_none()
        && record.region.is_none()
        && record.postal_code.is_none();
    if nothing_left {
        record.country = Some("US".to_owned());
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(value: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A legacy subscription file: `{"data": …}` lines, malformed lines spread evenly.
pub fn legacy_file(name: &str, spec: &FileSpec) -> SeededFile {
    let (records, mut expected) = records(spec);
    let text = json_lines(&records, true);
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let every = lines
        .len()
        .checked_div(spec.malformed)
        .map_or(usize::MAX, |n| n.max(1));
    let mut bytes = Vec::with_capacity(text.len() + spec.malformed * 48);
    let mut inserted = 0;
    for (i, line) in lines.iter().enumerate() {
        if inserted < spec.malformed && i % every == every / 2 {
            bytes.extend_from_slice(MALFORMED[inserted % MALFORMED.len()].as_bytes());
            bytes.push(b'\n');
            inserted += 1;
        }
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    while inserted < spec.malformed {
        bytes.extend_from_slice(MALFORMED[inserted % MALFORMED.len()].as_bytes());
        bytes.push(b'\n');
        inserted += 1;
    }
    expected.rejected = inserted as u64;
    expected.records += inserted as u64;
    SeededFile {
        name: name.to_owned(),
        bytes,
        expected,
    }
}

/// A dataset snapshot file: Parquet (Snappy, 4,096 rows per row group), written in `dir`.
pub fn parquet_file(name: &str, spec: &FileSpec, dir: &Path) -> std::io::Result<SeededFile> {
    let (records, expected) = records(spec);
    let path = dir.join(format!("seed-{}-{name}", spec.seed));
    write_parquet(&records, &path, 4096, parquet::basic::Compression::SNAPPY)
        .map_err(std::io::Error::other)?;
    let bytes = std::fs::read(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(SeededFile {
        name: name.to_owned(),
        bytes,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_file_counts_what_it_was_seeded_with() {
        let spec = FileSpec {
            seed: 3,
            records: 1000,
            unmatchable_per_mille: 100,
            malformed: 7,
        };
        let file = legacy_file("f.jsonl", &spec);
        let e = &file.expected;
        assert_eq!(e.records, 1007);
        assert_eq!(e.rejected, 7);
        assert_eq!(e.members + e.unmatchable, 1000);
        assert!((50..150).contains(&e.unmatchable), "{}", e.unmatchable);
        assert_eq!(e.email_hashes.len() as u64, e.members);
        let text = String::from_utf8(file.bytes).unwrap_or_default();
        assert_eq!(text.lines().count(), 1007);
        for bad in MALFORMED {
            assert!(text.contains(bad), "{bad}");
        }
        // deterministic
        assert_eq!(legacy_file("f.jsonl", &spec).expected, *e);
    }

    #[test]
    fn e_mail_hashes_are_sha256_hex() {
        // normalization.md's worked example: sha256("jane@example.org") = 13d855ce…ced6
        assert_eq!(
            sha256_hex("jane@example.org"),
            "13d855ce931073d4924ac377cda0e9a543908b9d6607727c8033d729c65eced6"
        );
    }
}
