//! Facebook audience member keys (the payload schema vocabulary) and [`AudienceMember`], the
//! final values of one record.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidValue;

/// A Custom Audience schema key. The declaration order is the fixed payload schema order of
/// normalization.md (`Ord` follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum MemberKey {
    /// Day of birth, `01`–`31`.
    DOBD,
    /// Month of birth, `01`–`12`.
    DOBM,
    /// Year of birth, 4 digits.
    DOBY,
    /// ISO 3166-1 alpha-2 country, lowercase.
    COUNTRY,
    /// Email address.
    EMAIL,
    /// First name.
    FN,
    /// First initial.
    FI,
    /// Gender, `m` or `f`.
    GEN,
    /// Last name.
    LN,
    /// Mobile advertiser id (sent in clear, lowercase).
    MADID,
    /// Phone number, digits with country code.
    PHONE,
    /// City.
    CT,
    /// State or region.
    ST,
    /// Postal code.
    ZIP,
}

impl MemberKey {
    /// Every key in schema order.
    pub const ALL: [MemberKey; 14] = [
        MemberKey::DOBD,
        MemberKey::DOBM,
        MemberKey::DOBY,
        MemberKey::COUNTRY,
        MemberKey::EMAIL,
        MemberKey::FN,
        MemberKey::FI,
        MemberKey::GEN,
        MemberKey::LN,
        MemberKey::MADID,
        MemberKey::PHONE,
        MemberKey::CT,
        MemberKey::ST,
        MemberKey::ZIP,
    ];

    /// The key as Facebook spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberKey::DOBD => "DOBD",
            MemberKey::DOBM => "DOBM",
            MemberKey::DOBY => "DOBY",
            MemberKey::COUNTRY => "COUNTRY",
            MemberKey::EMAIL => "EMAIL",
            MemberKey::FN => "FN",
            MemberKey::FI => "FI",
            MemberKey::GEN => "GEN",
            MemberKey::LN => "LN",
            MemberKey::MADID => "MADID",
            MemberKey::PHONE => "PHONE",
            MemberKey::CT => "CT",
            MemberKey::ST => "ST",
            MemberKey::ZIP => "ZIP",
        }
    }

    /// Parses Facebook's spelling (exact, upper case).
    pub fn parse(s: &str) -> Option<MemberKey> {
        MemberKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether values of this key are sent as SHA-256 hex (all but MADID).
    pub const fn is_hashed(self) -> bool {
        !matches!(self, MemberKey::MADID)
    }

    /// Position in the schema order (0..14).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Length of a SHA-256 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// Length of a SHA-256 digest in lowercase hex.
pub const HASH_HEX_LEN: usize = 64;

/// A SHA-256 digest.
pub type Digest = [u8; DIGEST_LEN];

/// SHA-256 of `input`. Where the CPU has SHA extensions, sha2's path for them (≈80 ns per
/// short value on the benchmark machine, where ring takes ≈130 ns: less per-call overhead);
/// elsewhere ring's assembly (1.5–1.7× faster than sha2's portable code).
pub fn sha256(input: &[u8]) -> Digest {
    if cpu_has_sha_extensions() {
        sha256_sha2(input)
    } else {
        sha256_ring(input)
    }
}

fn sha256_sha2(input: &[u8]) -> Digest {
    /// SHA-256's initial state (FIPS 180-4, 5.3.3).
    const INITIAL: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    // Values of up to 55 bytes fit one padded block: compress it directly, without the
    // streaming hasher's buffering (most member values are this short).
    if input.len() > 55 {
        use sha2::Digest as _;
        return sha2::Sha256::digest(input).into();
    }
    let mut block = [0u8; 64];
    block[..input.len()].copy_from_slice(input);
    block[input.len()] = 0x80;
    block[56..].copy_from_slice(&(input.len() as u64 * 8).to_be_bytes());
    let mut state = INITIAL;
    sha2::block_api::compress256(&mut state, &[block]);
    let mut out = [0u8; DIGEST_LEN];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn sha256_ring(input: &[u8]) -> Digest {
    let digest = ring::digest::digest(&ring::digest::SHA256, input);
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Whether the CPU has SHA-256 instructions (std caches the answer).
fn cpu_has_sha_extensions() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
    {
        false
    }
}

/// SHA-256 of `input` as 64 lowercase hex bytes, on the stack.
pub fn sha256_hex(input: &[u8]) -> [u8; HASH_HEX_LEN] {
    let mut out = [0u8; HASH_HEX_LEN];
    // 32 bytes always encode into exactly 64 hex bytes, so this cannot fail.
    let _ = const_hex::encode_to_slice(sha256(input), &mut out);
    out
}

/// Digests of the short values that make up most keys (one or two lowercase ASCII letters,
/// two digits, four-digit years 1900..=2155), computed once on first use (~1,100 hashes):
/// GEN, FI, COUNTRY, ST codes, DOBM, DOBD and DOBY then cost a table lookup instead of a
/// SHA-256.
struct ShortHashes {
    letters1: Vec<Digest>,
    letters2: Vec<Digest>,
    digits2: Vec<Digest>,
    years: Vec<Digest>,
}

const FIRST_CACHED_YEAR: u16 = 1900;
const CACHED_YEARS: u16 = 256;

fn short_hashes() -> &'static ShortHashes {
    static TABLE: std::sync::OnceLock<ShortHashes> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let letters1 = (b'a'..=b'z').map(|a| sha256(&[a])).collect();
        let letters2 = (b'a'..=b'z')
            .flat_map(|a| (b'a'..=b'z').map(move |b| sha256(&[a, b])))
            .collect();
        let digits2 = (b'0'..=b'9')
            .flat_map(|a| (b'0'..=b'9').map(move |b| sha256(&[a, b])))
            .collect();
        let years = (FIRST_CACHED_YEAR..FIRST_CACHED_YEAR + CACHED_YEARS)
            .map(|y| sha256(y.to_string().as_bytes()))
            .collect();
        ShortHashes {
            letters1,
            letters2,
            digits2,
            years,
        }
    })
}

/// [`sha256`], answered from a precomputed table for short common values.
pub(crate) fn sha256_short_cached(input: &[u8]) -> Digest {
    let cached = match *input {
        [a] if a.is_ascii_lowercase() => short_hashes().letters1.get(usize::from(a - b'a')),
        [a, b] if a.is_ascii_lowercase() && b.is_ascii_lowercase() => short_hashes()
            .letters2
            .get(usize::from(a - b'a') * 26 + usize::from(b - b'a')),
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => short_hashes()
            .digits2
            .get(usize::from(a - b'0') * 10 + usize::from(b - b'0')),
        [a, b, c, d] if input.iter().all(u8::is_ascii_digit) && a != b'0' => {
            let year = input.iter().fold(0u16, |n, x| n * 10 + u16::from(x - b'0'));
            let _ = (b, c, d);
            year.checked_sub(FIRST_CACHED_YEAR)
                .and_then(|i| short_hashes().years.get(usize::from(i)))
        }
        _ => None,
    };
    match cached {
        Some(digest) => *digest,
        None => sha256(input),
    }
}

/// Whether `s` is exactly 64 lowercase hex characters.
pub fn is_lower_hex64(s: &[u8]) -> bool {
    s.len() == HASH_HEX_LEN && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The final value of one key of an [`AudienceMember`]: a SHA-256 digest (every key but
/// MADID; displayed and serialised as 64 lowercase hex characters) or the MADID in clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberValue<'a> {
    /// The digest of a hashed key.
    Hashed(&'a Digest),
    /// The MADID, sent in clear.
    Clear(&'a str),
}

impl MemberValue<'_> {
    /// Calls `f` with the value as Facebook receives it (lowercase hex for digests), without
    /// allocating.
    pub fn with_str<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        match self {
            MemberValue::Hashed(d) => f(const_hex::Buffer::<DIGEST_LEN>::new().format(d)),
            MemberValue::Clear(s) => f(s),
        }
    }
}

impl fmt::Display for MemberValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

impl PartialEq<str> for MemberValue<'_> {
    fn eq(&self, other: &str) -> bool {
        self.with_str(|s| s == other)
    }
}

impl PartialEq<&str> for MemberValue<'_> {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl Serialize for MemberValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|s| serializer.serialize_str(s))
    }
}

/// The final values of one record, per [`MemberKey`]: hashed keys hold their SHA-256 digest
/// (32 bytes inline, no heap allocation; hex-encoded only when written out), `MADID` holds
/// the normalized id in clear.
///
/// Iteration, [`AudienceMember::to_json`] and the serde form all follow the schema order. The
/// serde form is an object of the present keys and their final values (`{}` when empty).
#[derive(Clone)]
pub struct AudienceMember {
    /// Bit `k.index()` set when key `k` has a value.
    present: u16,
    /// Digests of the hashed keys, indexed by [`MemberKey::index`] (the MADID slot is unused).
    digests: [Digest; 14],
    /// The MADID value (empty when absent).
    madid: String,
}

impl Default for AudienceMember {
    fn default() -> Self {
        AudienceMember {
            present: 0,
            digests: [[0; DIGEST_LEN]; 14],
            madid: String::new(),
        }
    }
}

impl AudienceMember {
    /// A member without any value.
    pub fn new() -> Self {
        Self::default()
    }

    /// The final value of `key`, if present.
    pub fn get(&self, key: MemberKey) -> Option<MemberValue<'_>> {
        if !self.has(key) {
            None
        } else if key == MemberKey::MADID {
            Some(MemberValue::Clear(&self.madid))
        } else {
            self.digests.get(key.index()).map(MemberValue::Hashed)
        }
    }

    /// The digest of a present hashed key.
    pub fn digest(&self, key: MemberKey) -> Option<&Digest> {
        match self.get(key)? {
            MemberValue::Hashed(d) => Some(d),
            MemberValue::Clear(_) => None,
        }
    }

    /// The MADID, if present.
    pub fn madid(&self) -> Option<&str> {
        self.has(MemberKey::MADID).then_some(self.madid.as_str())
    }

    /// Whether `key` has a value.
    pub fn has(&self, key: MemberKey) -> bool {
        self.present & (1 << key.index()) != 0
    }

    /// Present keys and their values, in schema order.
    pub fn iter(&self) -> impl Iterator<Item = (MemberKey, MemberValue<'_>)> + '_ {
        MemberKey::ALL
            .into_iter()
            .filter_map(move |k| self.get(k).map(|v| (k, v)))
    }

    /// The present keys as a bit set (bit [`MemberKey::index`]).
    pub fn key_mask(&self) -> u16 {
        self.present
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.present.count_ones() as usize
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Whether the member may be sent: it has EMAIL, PHONE or MADID, or both FN and LN.
    pub fn is_matchable(&self) -> bool {
        self.has(MemberKey::EMAIL)
            || self.has(MemberKey::PHONE)
            || self.has(MemberKey::MADID)
            || (self.has(MemberKey::FN) && self.has(MemberKey::LN))
    }

    /// Sets a final value after checking it: hashed keys need 64 hex characters (either
    /// case), MADID a non-empty string (stored as given). For tests, tools and
    /// deserialisation; the parser uses the unchecked crate-internal setters.
    pub fn set(&mut self, key: MemberKey, value: &str) -> Result<(), InvalidValue> {
        if key == MemberKey::MADID {
            if value.is_empty() {
                return Err(InvalidValue::new("madid", value, "must not be empty"));
            }
            self.set_madid(value);
            return Ok(());
        }
        match decode_hex64(value.as_bytes()) {
            Some(digest) => {
                self.set_hash(key, digest);
                Ok(())
            }
            None => Err(InvalidValue::new(
                key.as_str(),
                value,
                "expected 64 hex characters",
            )),
        }
    }

    /// Removes every value (keeps the MADID's allocation for reuse).
    pub fn clear(&mut self) {
        self.present = 0;
        self.madid.clear();
    }

    /// Removes the value of `key`.
    pub fn remove(&mut self, key: MemberKey) {
        self.present &= !(1 << key.index());
        if key == MemberKey::MADID {
            self.madid.clear();
        } else if let Some(d) = self.digests.get_mut(key.index()) {
            *d = [0; DIGEST_LEN];
        }
    }

    /// Stores the digest of a hashed key (no check).
    pub(crate) fn set_hash(&mut self, key: MemberKey, digest: Digest) {
        debug_assert!(key.is_hashed());
        if let Some(d) = self.digests.get_mut(key.index()) {
            *d = digest;
            self.present |= 1 << key.index();
        }
    }

    /// Hashes an already normalized value into a hashed key.
    pub(crate) fn set_hash_of(&mut self, key: MemberKey, normalized: &str) {
        self.set_hash(key, sha256_short_cached(normalized.as_bytes()));
    }

    /// Stores the MADID (already normalized).
    pub(crate) fn set_madid(&mut self, madid: &str) {
        self.madid.clear();
        self.madid.push_str(madid);
        self.present |= 1 << MemberKey::MADID.index();
    }

    /// The member as a JSON object: present keys in schema order, `{}` when empty.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(2 + self.len() * 80);
        self.write_json(&mut out);
        out
    }

    /// Appends [`AudienceMember::to_json`] to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        let mut hex = const_hex::Buffer::<DIGEST_LEN>::new();
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(k.as_str());
            out.push_str("\":");
            match v {
                MemberValue::Hashed(d) => {
                    // Lowercase hex: nothing to escape.
                    out.push('"');
                    out.push_str(hex.format(d));
                    out.push('"');
                }
                MemberValue::Clear(s) => write_json_str(out, s),
            }
        }
        out.push('}');
    }
}

/// 64 hex characters (either case) as a digest; `None` for anything else. (const_hex alone
/// would also take a `0x` prefix: the length check rules it out.)
pub(crate) fn decode_hex64(s: &[u8]) -> Option<Digest> {
    if s.len() != HASH_HEX_LEN {
        return None;
    }
    const_hex::decode_to_array(s).ok()
}

/// Appends `s` as a JSON string literal (quotes included), escaping what JSON requires.
pub(crate) fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    use std::fmt::Write;
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

impl PartialEq for AudienceMember {
    fn eq(&self, other: &Self) -> bool {
        self.present == other.present && self.iter().eq(other.iter())
    }
}

impl Eq for AudienceMember {}

impl fmt::Debug for AudienceMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for AudienceMember {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k.as_str(), &v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AudienceMember {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = AudienceMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of member keys and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut member = AudienceMember::new();
                while let Some((k, v)) = map.next_entry::<MemberKey, String>()? {
                    member.set(k, &v).map_err(serde::de::Error::custom)?;
                }
                Ok(member)
            }
        }
        deserializer.deserialize_map(MemberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_order_is_fixed() {
        let names: Vec<&str> = MemberKey::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "DOBD", "DOBM", "DOBY", "COUNTRY", "EMAIL", "FN", "FI", "GEN", "LN", "MADID",
                "PHONE", "CT", "ST", "ZIP"
            ]
        );
        let mut sorted = MemberKey::ALL;
        sorted.reverse();
        sorted.sort();
        assert_eq!(sorted, MemberKey::ALL);
        for (i, k) in MemberKey::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(MemberKey::parse(k.as_str()), Some(*k));
        }
        assert!(!MemberKey::MADID.is_hashed());
        assert!(MemberKey::EMAIL.is_hashed());
    }

    #[test]
    fn sha256_hex_matches_facebook_vector() {
        assert_eq!(
            &sha256_hex(b"mary@example.com"),
            b"f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        );
        assert!(is_lower_hex64(&sha256_hex(b"")));
        assert!(!is_lower_hex64(
            b"F1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        ));
    }

    #[test]
    fn both_sha256_implementations_agree() {
        // block boundaries (55/56/64 bytes) and multi-block inputs included
        for len in (0..200).chain([1000, 4096]) {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert_eq!(sha256_sha2(&input), sha256_ring(&input), "{len} bytes");
        }
        assert_eq!(
            sha256_sha2(b"mary@example.com").to_vec(),
            const_hex::decode("f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79")
                .unwrap()
        );
    }

    #[test]
    fn cached_short_hashes_equal_computed_ones() {
        let mut inputs: Vec<String> = Vec::new();
        for a in 'a'..='z' {
            inputs.push(a.to_string());
            for b in 'a'..='z' {
                inputs.push(format!("{a}{b}"));
            }
        }
        for n in 0..100 {
            inputs.push(format!("{n:02}"));
        }
        for y in 1000..3000 {
            inputs.push(y.to_string());
        }
        for other in ["", "A", "é", "0123", "aB", "1a", "abc", "99999", "0000"] {
            inputs.push(other.to_string());
        }
        for input in &inputs {
            assert_eq!(
                sha256_short_cached(input.as_bytes()),
                sha256(input.as_bytes()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn member_accessors_json_and_serde() {
        let mut m = AudienceMember::new();
        assert!(m.is_empty());
        assert_eq!(m.to_json(), "{}");
        assert!(!m.is_matchable());
        m.set_hash_of(MemberKey::LN, "smith");
        m.set_hash_of(MemberKey::DOBD, "04");
        assert!(!m.is_matchable());
        m.set_hash_of(MemberKey::FN, "john");
        assert!(m.is_matchable());
        m.set_madid("ab-\"x");
        let keys: Vec<MemberKey> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                MemberKey::DOBD,
                MemberKey::FN,
                MemberKey::LN,
                MemberKey::MADID
            ]
        );
        let json = m.to_json();
        let smith = String::from_utf8(sha256_hex(b"smith").to_vec()).unwrap();
        assert!(json.contains(&format!(r#""LN":"{smith}""#)), "{json}");
        assert_eq!(m.get(MemberKey::LN).unwrap().to_string(), smith);
        assert!(json.starts_with(r#"{"DOBD":""#), "{json}");
        assert!(json.ends_with(r#","MADID":"ab-\"x"}"#), "{json}");
        assert_eq!(serde_json::to_string(&m).unwrap(), json);
        let back: AudienceMember = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.len(), 4);
        m.remove(MemberKey::MADID);
        assert_eq!(m.get(MemberKey::MADID), None);
        assert!(m.set(MemberKey::EMAIL, "xyz").is_err());
        assert!(m.set(MemberKey::MADID, "").is_err());
        m.set(MemberKey::EMAIL, &"A".repeat(64)).unwrap();
        assert_eq!(m.get(MemberKey::EMAIL).unwrap(), "a".repeat(64).as_str());
        assert_eq!(m.digest(MemberKey::EMAIL), Some(&[0xaa; DIGEST_LEN]));
        // 64 characters that const_hex would read as a `0x` prefix and 62 digits
        assert!(
            m.set(MemberKey::EMAIL, &format!("0x{}", "a".repeat(62)))
                .is_err()
        );
        assert!(
            m.set(MemberKey::EMAIL, &format!("0x{}", "a".repeat(64)))
                .is_err()
        );
        assert!(m.set(MemberKey::EMAIL, &"g".repeat(64)).is_err());
        assert!(serde_json::from_str::<AudienceMember>(r#"{"EMAIL":"nothex"}"#).is_err());
        assert!(serde_json::from_str::<AudienceMember>(r#"{"NOPE":"x"}"#).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        write_json_str(&mut out, "a\u{1}\n\\\"é");
        assert_eq!(out, r#""a\u0001\n\\\"é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\u{1}\n\\\"é");
    }
}
