//! US states, the District of Columbia and the inhabited territories, by their full names
//! reduced to lowercase letters (the form [`super::rules::letters`] produces).

/// `(letters-only lowercase name, two-letter code)`.
const STATES: &[(&str, &str)] = &[
    ("alabama", "al"),
    ("alaska", "ak"),
    ("arizona", "az"),
    ("arkansas", "ar"),
    ("california", "ca"),
    ("colorado", "co"),
    ("connecticut", "ct"),
    ("delaware", "de"),
    ("florida", "fl"),
    ("georgia", "ga"),
    ("hawaii", "hi"),
    ("idaho", "id"),
    ("illinois", "il"),
    ("indiana", "in"),
    ("iowa", "ia"),
    ("kansas", "ks"),
    ("kentucky", "ky"),
    ("louisiana", "la"),
    ("maine", "me"),
    ("maryland", "md"),
    ("massachusetts", "ma"),
    ("michigan", "mi"),
    ("minnesota", "mn"),
    ("mississippi", "ms"),
    ("missouri", "mo"),
    ("montana", "mt"),
    ("nebraska", "ne"),
    ("nevada", "nv"),
    ("newhampshire", "nh"),
    ("newjersey", "nj"),
    ("newmexico", "nm"),
    ("newyork", "ny"),
    ("northcarolina", "nc"),
    ("northdakota", "nd"),
    ("ohio", "oh"),
    ("oklahoma", "ok"),
    ("oregon", "or"),
    ("pennsylvania", "pa"),
    ("rhodeisland", "ri"),
    ("southcarolina", "sc"),
    ("southdakota", "sd"),
    ("tennessee", "tn"),
    ("texas", "tx"),
    ("utah", "ut"),
    ("vermont", "vt"),
    ("virginia", "va"),
    ("washington", "wa"),
    ("westvirginia", "wv"),
    ("wisconsin", "wi"),
    ("wyoming", "wy"),
    ("districtofcolumbia", "dc"),
    ("washingtondc", "dc"),
    ("americansamoa", "as"),
    ("guam", "gu"),
    ("northernmarianaislands", "mp"),
    ("puertorico", "pr"),
    ("virginislands", "vi"),
    ("usvirginislands", "vi"),
    ("unitedstatesvirginislands", "vi"),
    ("unitedstatesminoroutlyingislands", "um"),
];

/// The code of a state given as letters-only lowercase full name.
pub(crate) fn code_of(letters: &str) -> Option<&'static str> {
    // Names are at least four letters: skip the lookup for codes and short values.
    if letters.len() < 4 {
        return None;
    }
    STATES
        .iter()
        .find(|(name, _)| *name == letters)
        .map(|(_, code)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_fifty_states_dc_and_territories() {
        let codes: std::collections::BTreeSet<&str> = STATES.iter().map(|(_, c)| *c).collect();
        // 50 states + DC + AS, GU, MP, PR, VI, UM
        assert_eq!(codes.len(), 57);
        for (name, code) in STATES {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
            assert_eq!(code.len(), 2);
            assert_eq!(code_of(name), Some(*code));
        }
        assert_eq!(code_of("ny"), None);
        assert_eq!(code_of("bavaria"), None);
    }
}
