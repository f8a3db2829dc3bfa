//! The normalization and validation rule of each key, as pure functions writing into a
//! reusable scratch buffer (no allocation once the buffer has grown).

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};
use unicode_normalization::UnicodeNormalization;

use crate::member::{Digest, decode_hex64};

/// The result of checking one source value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing to use (empty after normalization): not a rejection.
    Absent,
    /// Present but invalid: a field rejection.
    Invalid,
    /// Valid; the normalized value is in the output buffer.
    Valid,
}

/// Whether `s` holds a capital sigma (`Σ`, UTF-8 `CE A3`), the one letter whose lowercase
/// depends on its context (`ς` at the end of a word): strings holding it go through
/// `str::to_lowercase`, the others char by char.
fn has_capital_sigma(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(0xCE, b).any(|i| b.get(i + 1) == Some(&0xA3))
}

/// Appends `s` lowercased (`s` has no capital sigma, or is ASCII).
fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        if let Some(new) = out.get_mut(start..) {
            new.make_ascii_lowercase();
        }
    } else if has_capital_sigma(s) {
        out.push_str(&s.to_lowercase());
    } else {
        for c in s.chars() {
            match latin1_lowercase(c) {
                Some(l) => out.push(l),
                None => out.extend(c.to_lowercase()),
            }
        }
    }
}

/// The lowercase of a Latin-1 character (U+0000–U+00FF) without Unicode tables: the capitals
/// `A`–`Z` and `À`–`Þ` (but `×`) map to the code point 0x20 above, every other one to
/// itself. `None` beyond Latin-1.
fn latin1_lowercase(c: char) -> Option<char> {
    match c {
        'A'..='Z' | '\u{c0}'..='\u{de}' if c != '\u{d7}' => char::from_u32(u32::from(c) + 0x20),
        c if u32::from(c) <= 0xff => Some(c),
        _ => None,
    }
}

/// `s` without surrounding whitespace (`str::trim`), answered without decoding characters
/// when both ends are printable ASCII (nearly always).
pub(crate) fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Pre-hashed values: trimmed, 64 hex characters of either case; the digest they spell
/// (sent as lowercase hex). `Ok(None)` when empty, `Err` when invalid.
pub(crate) fn hex64(raw: &str) -> Result<Option<Digest>, ()> {
    let s = trim(raw).as_bytes();
    if s.is_empty() {
        return Ok(None);
    }
    decode_hex64(s).map(Some).ok_or(())
}

/// Raw emails: trimmed, lowercased, exactly one `@` with text on both sides.
pub(crate) fn email(raw: &str, out: &mut String) -> Check {
    out.clear();
    let s = trim(raw);
    if s.is_empty() {
        return Check::Absent;
    }
    let b = s.as_bytes();
    let valid = match (memchr::memchr(b'@', b), memchr::memrchr(b'@', b)) {
        (Some(at), Some(last)) => at == last && at > 0 && at + 1 < b.len(),
        _ => false,
    };
    if !valid {
        return Check::Invalid;
    }
    push_lowercase(out, s);
    Check::Valid
}

/// Raw phones: ASCII digits only, leading zeros dropped, 7–15 digits.
pub(crate) fn phone(raw: &str, out: &mut String) -> Check {
    out.clear();
    for b in raw.bytes() {
        if b.is_ascii_digit() && !(b == b'0' && out.is_empty()) {
            out.push(char::from(b));
        }
    }
    match out.len() {
        0 => Check::Absent,
        7..=15 => Check::Valid,
        _ => Check::Invalid,
    }
}

/// MADIDs: trimmed, lowercased (hyphens kept), non-empty.
pub(crate) fn madid(raw: &str, out: &mut String) -> Check {
    out.clear();
    let s = trim(raw);
    if s.is_empty() {
        return Check::Absent;
    }
    push_lowercase(out, s);
    Check::Valid
}

/// Names, cities and regions: NFC, lowercase, letters only (any script).
pub(crate) fn letters(raw: &str, out: &mut String) -> Check {
    out.clear();
    if raw.bytes().all(|b| b.is_ascii_alphabetic()) {
        push_lowercase(out, raw);
    } else if raw.is_ascii() {
        out.extend(
            raw.bytes()
                .filter(u8::is_ascii_alphabetic)
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
    } else if raw.chars().all(|c| u32::from(c) < 0x300) {
        // Nothing below U+0300 combines or decomposes differently: already NFC.
        push_lowercase_letters(out, raw.chars());
    } else if has_capital_sigma(raw) {
        let nfc: String = raw.nfc().collect();
        out.extend(nfc.to_lowercase().chars().filter(|l| l.is_alphabetic()));
    } else if unicode_normalization::is_nfc_quick(raw.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        // Already NFC (the common case): skip the decompose/recompose pass.
        push_lowercase_letters(out, raw.chars());
    } else {
        push_lowercase_letters(out, raw.nfc());
    }
    if out.is_empty() {
        Check::Absent
    } else {
        Check::Valid
    }
}

/// Appends the lowercase letters of `chars` (no capital sigma among them).
fn push_lowercase_letters(out: &mut String, chars: impl Iterator<Item = char>) {
    for c in chars {
        match latin1_lowercase(c) {
            // the Latin-1 lowercase letters: `a`–`z`, `ß`–`ÿ` but `÷`
            Some(l @ ('a'..='z' | '\u{df}'..='\u{ff}')) if l != '\u{f7}' => out.push(l),
            Some(l) if l.is_ascii() => {}
            // other Latin-1 characters (`ª`, `µ`, `º` are letters) and beyond
            _ => {
                for l in c.to_lowercase() {
                    if l.is_alphabetic() {
                        out.push(l);
                    }
                }
            }
        }
    }
}

/// The first character of a normalized name (for FI).
pub(crate) fn first_char(normalized: &str) -> &str {
    normalized
        .char_indices()
        .nth(1)
        .map_or(normalized, |(i, _)| &normalized[..i])
}

/// Genders: `m` or `f`.
pub(crate) fn gender(raw: &str) -> (Check, &'static str) {
    let s = trim(raw);
    if s.is_empty() {
        (Check::Absent, "")
    } else if s.eq_ignore_ascii_case("male") || s.eq_ignore_ascii_case("m") {
        (Check::Valid, "m")
    } else if s.eq_ignore_ascii_case("female") || s.eq_ignore_ascii_case("f") {
        (Check::Valid, "f")
    } else {
        (Check::Invalid, "")
    }
}

/// Countries: trimmed, exactly two ASCII letters, lowercased.
pub(crate) fn country(raw: &str, out: &mut String) -> Check {
    out.clear();
    let s = trim(raw);
    if s.is_empty() {
        return Check::Absent;
    }
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Check::Invalid;
    }
    push_lowercase(out, s);
    Check::Valid
}

/// Regions: a US state's (or territory's) full name becomes its code; then letters only,
/// lowercase. Names are matched on their letters only, so `New York`, `NEW-YORK` and
/// `new york` all give `ny`.
pub(crate) fn region(raw: &str, out: &mut String) -> Check {
    let check = letters(raw, out);
    if check == Check::Valid
        && let Some(code) = super::states::code_of(out)
    {
        out.clear();
        out.push_str(code);
    }
    check
}

/// Postal codes: whitespace removed, lowercase; US ZIP+4 (`12345-6789` or 9 digits) keeps
/// its first 5 digits.
pub(crate) fn zip(raw: &str, out: &mut String) -> Check {
    out.clear();
    if raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        push_lowercase(out, raw);
    } else if has_capital_sigma(raw) {
        // lowercase the whole value first: a final sigma depends on its neighbours
        out.extend(raw.to_lowercase().chars().filter(|c| !c.is_whitespace()));
    } else {
        for c in raw.chars().filter(|c| !c.is_whitespace()) {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        }
    }
    let b = out.as_bytes();
    let zip4 = (b.len() == 9 && b.iter().all(u8::is_ascii_digit))
        || (b.len() == 10
            && b[5] == b'-'
            && b[..5].iter().all(u8::is_ascii_digit)
            && b[6..].iter().all(u8::is_ascii_digit));
    if zip4 {
        out.truncate(5);
    }
    if out.is_empty() {
        Check::Absent
    } else {
        Check::Valid
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 timestamp read in UTC.
pub(crate) fn birthdate(raw: &str) -> Result<Option<Date>, ()> {
    let s = trim(raw);
    if s.is_empty() {
        return Ok(None);
    }
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = &b[r];
            if part.iter().all(u8::is_ascii_digit) {
                Some(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
            } else {
                None
            }
        };
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(());
        };
        let month = Month::try_from(u8::try_from(m).map_err(|_| ())?).map_err(|_| ())?;
        let day = u8::try_from(d).map_err(|_| ())?;
        let year = i32::try_from(y).map_err(|_| ())?;
        return Date::from_calendar_date(year, month, day)
            .map(Some)
            .map_err(|_| ());
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| ())?;
    // `to_offset` panics when the UTC instant leaves the representable years
    t.checked_to_offset(UtcOffset::UTC)
        .map(|t| Some(t.date()))
        .ok_or(())
}

/// `birth_year` given as a string: exactly four ASCII digits (surrounding spaces trimmed).
pub(crate) fn year_string(raw: &str) -> Result<Option<i64>, ()> {
    let s = trim(raw).as_bytes();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != 4 || !s.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    Ok(Some(s.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&str, &mut String) -> Check, input: &str) -> (Check, String) {
        let mut out = String::new();
        let c = f(input, &mut out);
        (
            c,
            if c == Check::Valid {
                out
            } else {
                String::new()
            },
        )
    }

    #[test]
    fn fast_paths_agree_with_the_plain_unicode_rules() {
        // every code point of the Latin blocks the fast paths special-case, alone, between
        // ASCII letters and in capitals, through each rule that lowercases
        let mut inputs: Vec<String> = Vec::new();
        for cp in (0x20..0x300).chain([0x3a3, 0x130, 0x1e9e, 0x2126]) {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            inputs.push(c.to_string());
            inputs.push(format!("Ab{c}Cd"));
            inputs.push(format!("{c}{c} X"));
        }
        inputs.extend(["ΣΑΣ", "ÀÉÎÕÜ", "straße", "×÷", "ABC", "abc def", "A1b2"].map(String::from));
        for input in &inputs {
            let nfc: String = input.nfc().collect();
            let lower = nfc.to_lowercase();
            let want_letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
            let (check, got) = run(letters, input);
            assert_eq!(got, want_letters, "letters {input:?}");
            assert_eq!(check == Check::Valid, !want_letters.is_empty(), "{input:?}");
            let mut out = String::from("x");
            push_lowercase(&mut out, input);
            assert_eq!(
                out,
                format!("x{}", input.to_lowercase()),
                "lowercase {input:?}"
            );
            let want_zip: String = input
                .to_lowercase()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            assert_eq!(run(zip, input).1, want_zip, "zip {input:?}");
            assert_eq!(
                has_capital_sigma(input),
                input.contains('\u{3a3}'),
                "{input:?}"
            );
        }
    }

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a ",
            "\u{b}a\u{c}",
            "\u{a0}x\u{a0}",
            "x\u{2003}",
            "\u{85}",
            "é",
            " é ",
            "a b",
            "\ta\r\n",
            "!",
            "~x~",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn email_table() {
        use Check::*;
        let table: &[(&str, Check, &str)] = &[
            ("  Jane@Example.ORG ", Valid, "jane@example.org"),
            ("mary@example.com", Valid, "mary@example.com"),
            ("ÉLODIE@Exemple.FR", Valid, "élodie@exemple.fr"),
            ("", Absent, ""),
            ("   ", Absent, ""),
            ("no-at-sign", Invalid, ""),
            ("@example.com", Invalid, ""),
            ("jane@", Invalid, ""),
            ("a@b@c", Invalid, ""),
            ("@", Invalid, ""),
            ("a@b", Valid, "a@b"),
        ];
        for (input, check, out) in table {
            assert_eq!(run(email, input), (*check, out.to_string()), "{input:?}");
        }
    }

    #[test]
    fn phone_table() {
        use Check::*;
        let table: &[(&str, Check, &str)] = &[
            ("+1 (415) 555-0123", Valid, "14155550123"),
            ("0033 6 12 34 56 78", Valid, "33612345678"),
            ("1234567", Valid, "1234567"),
            ("123456", Invalid, ""),
            ("123456789012345", Valid, "123456789012345"),
            ("1234567890123456", Invalid, ""),
            ("0000000123456", Invalid, ""),
            ("00000001234567", Valid, "1234567"),
            ("", Absent, ""),
            ("call me", Absent, ""),
            ("000", Absent, ""),
            ("+٤١٥٥٥٥٠١٢٣", Absent, ""),
        ];
        for (input, check, out) in table {
            assert_eq!(run(phone, input), (*check, out.to_string()), "{input:?}");
        }
    }

    #[test]
    fn hex_table() {
        let lower = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79";
        let digest = crate::member::sha256(b"mary@example.com");
        assert_eq!(hex64(&lower.to_uppercase()), Ok(Some(digest)));
        assert_eq!(hex64(&format!(" {lower} ")), Ok(Some(digest)));
        assert_eq!(hex64(&lower[..63]), Err(()));
        assert_eq!(hex64(&format!("{lower}0")), Err(()));
        assert_eq!(hex64(&lower.replace('f', "g")), Err(()));
        assert_eq!(hex64(&format!("0x{}", &lower[..62])), Err(()));
        assert_eq!(hex64(&format!("0x{lower}")), Err(()));
        assert_eq!(hex64("32c281951528fda472cc53ea2c5c81b9d50f184e"), Err(()));
        assert_eq!(hex64(""), Ok(None));
        assert_eq!(hex64(" \t "), Ok(None));
    }

    #[test]
    fn letters_table() {
        use Check::*;
        let table: &[(&str, Check, &str)] = &[
            ("John", Valid, "john"),
            ("  Mary-Jane O'Neil ", Valid, "maryjaneoneil"),
            ("Zoë", Valid, "zoë"),
            // decomposed e + combining diaeresis composes to ë before filtering
            ("Zoe\u{308}", Valid, "zoë"),
            ("ÉMILE", Valid, "émile"),
            ("Müller-Lüdenscheidt", Valid, "müllerlüdenscheidt"),
            ("Straße", Valid, "straße"),
            ("Łukasz", Valid, "łukasz"),
            ("Владимир", Valid, "владимир"),
            ("山田", Valid, "山田"),
            ("R2-D2", Valid, "rd"),
            ("123", Absent, ""),
            ("", Absent, ""),
            ("!!! ...", Absent, ""),
            ("😀Ann", Valid, "ann"),
        ];
        for (input, check, out) in table {
            assert_eq!(run(letters, input), (*check, out.to_string()), "{input:?}");
        }
        assert_eq!(first_char("émile"), "é");
    }

    /// Found by the differential check: lowercasing was done char by char, which maps every
    /// capital sigma to `σ`; Unicode's lowercase of a string (Rust's `str::to_lowercase`,
    /// Python's `str.lower`) gives the final form `ς` at the end of a word.
    #[test]
    fn capital_sigma_at_word_end_lowercases_to_final_sigma() {
        use Check::*;
        assert_eq!(run(letters, "ΣΟΦΟΣ"), (Valid, "σοφος".to_string()));
        assert_eq!(run(letters, "ΟΔΥΣΣΕΑΣ."), (Valid, "οδυσσεας".to_string()));
        assert_eq!(run(letters, "ΝΙΚΟΣ ΣΑΣ"), (Valid, "νικοςσας".to_string()));
        assert_eq!(run(letters, "Σ"), (Valid, "σ".to_string()));
        assert_eq!(run(email, "ΣΑΣ@x.gr"), (Valid, "σας@x.gr".to_string()));
        assert_eq!(run(madid, "ΑΣ-1"), (Valid, "ας-1".to_string()));
        // lowercase, then remove spaces (the spec's order)
        assert_eq!(run(zip, "ΑΣ 12"), (Valid, "ας12".to_string()));
        assert_eq!(run(zip, "ΣΑΣ1"), (Valid, "σας1".to_string()));
        assert_eq!(first_char("j"), "j");
        assert_eq!(first_char("山田"), "山");
    }

    #[test]
    fn gender_table() {
        for (input, expected) in [
            ("male", (Check::Valid, "m")),
            (" Male ", (Check::Valid, "m")),
            ("M", (Check::Valid, "m")),
            ("FEMALE", (Check::Valid, "f")),
            ("f", (Check::Valid, "f")),
            ("Female", (Check::Valid, "f")),
            ("unknown", (Check::Invalid, "")),
            ("males", (Check::Invalid, "")),
            ("", (Check::Absent, "")),
        ] {
            assert_eq!(gender(input), expected, "{input:?}");
        }
    }

    #[test]
    fn country_region_zip_tables() {
        use Check::*;
        for (input, check, out) in [
            ("FR", Valid, "fr"),
            (" us ", Valid, "us"),
            ("USA", Invalid, ""),
            ("U", Invalid, ""),
            ("1A", Invalid, ""),
            ("É1", Invalid, ""),
            ("", Absent, ""),
        ] {
            assert_eq!(run(country, input), (check, out.to_string()), "{input:?}");
        }
        for (input, check, out) in [
            ("California", Valid, "ca"),
            ("NEW YORK", Valid, "ny"),
            ("new-york", Valid, "ny"),
            ("District of Columbia", Valid, "dc"),
            ("West Virginia", Valid, "wv"),
            ("Virginia", Valid, "va"),
            ("Puerto Rico", Valid, "pr"),
            ("CA", Valid, "ca"),
            ("N.Y.", Valid, "ny"),
            ("Île-de-France", Valid, "îledefrance"),
            ("Bavaria", Valid, "bavaria"),
            ("", Absent, ""),
        ] {
            assert_eq!(run(region, input), (check, out.to_string()), "{input:?}");
        }
        for (input, check, out) in [
            ("94107", Valid, "94107"),
            ("94107-1234", Valid, "94107"),
            ("941071234", Valid, "94107"),
            (" 94107 1234 ", Valid, "94107"),
            ("SW1A 1AA", Valid, "sw1a1aa"),
            ("1234-567", Valid, "1234-567"),
            ("12345-678", Valid, "12345-678"),
            ("9410712345", Valid, "9410712345"),
            ("   ", Absent, ""),
        ] {
            assert_eq!(run(zip, input), (check, out.to_string()), "{input:?}");
        }
    }

    #[test]
    fn birthdate_and_year_strings() {
        let d = |y, m, d| {
            Ok(Some(
                Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap(),
            ))
        };
        assert_eq!(birthdate("1975-07-04T00:00:00Z"), d(1975, 7, 4));
        assert_eq!(birthdate("1975-07-04"), d(1975, 7, 4));
        assert_eq!(birthdate("1975-07-04T22:30:00-05:00"), d(1975, 7, 5));
        assert_eq!(birthdate("1975-07-04T01:30:00+02:00"), d(1975, 7, 3));
        assert_eq!(birthdate("1980-03-10T00:00:00.123Z"), d(1980, 3, 10));
        assert_eq!(birthdate(""), Ok(None));
        assert_eq!(birthdate("1975-02-30"), Err(()));
        assert_eq!(birthdate("1975-13-01"), Err(()));
        assert_eq!(birthdate("1975-7-4"), Err(()));
        assert_eq!(birthdate("1975-07-04T00:00:00"), Err(()));
        assert_eq!(birthdate("04/07/1975"), Err(()));
        assert_eq!(birthdate("yesterday"), Err(()));
        assert_eq!(year_string("1980"), Ok(Some(1980)));
        assert_eq!(year_string(" 1980 "), Ok(Some(1980)));
        assert_eq!(year_string("80"), Err(()));
        assert_eq!(year_string("1980.0"), Err(()));
        assert_eq!(year_string("+980"), Err(()));
        assert_eq!(year_string(""), Ok(None));
    }

    /// Found by the differential check: a timestamp whose UTC instant leaves the years
    /// -9999..=9999 made `to_offset` panic; it is an invalid birthdate instead.
    #[test]
    fn birthdate_outside_representable_range_after_utc_is_invalid() {
        assert_eq!(birthdate("9999-12-31T23:00:00-02:00"), Err(()));
        assert_eq!(birthdate("-9999-01-01T00:30:00+01:00"), Err(()));
        assert!(birthdate("9999-12-31T23:00:00+02:00").is_ok());
    }
}
