//! Facebook audience member keys (the payload schema vocabulary).

use std::fmt;

use serde::{Deserialize, Serialize};

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
}
