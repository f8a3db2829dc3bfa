//! Upload payload and session validation of the fake, as Facebook does it.

use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::MAX_BATCH_SIZE;
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

/// A decoded, shape-checked payload.
#[derive(Debug)]
pub(crate) struct CheckedPayload {
    pub(crate) schema: Vec<String>,
    /// The rows, when asked to keep them.
    pub(crate) rows: Vec<Vec<String>>,
    /// Rows in the payload.
    pub(crate) received: u64,
    pub(crate) num_invalid_entries: u64,
    pub(crate) invalid_samples: Vec<String>,
}

/// A decoded session parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionParam {
    pub(crate) session_id: u64,
    pub(crate) batch_seq: u32,
    pub(crate) last_batch_flag: bool,
    pub(crate) estimated_num_total: Option<u64>,
}

fn is_hex64(v: &str) -> bool {
    // every byte compared, without stopping early: the compiler vectorises it
    v.len() == 64
        && v.bytes().fold(true, |hex, b| {
            hex & ((b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6))
        })
}

/// One cell of a row: a string (borrowed from the payload when it has no escapes), `null`
/// (empty) or a number (its decimal text).
struct Cell<'a>(Cow<'a, str>);

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or null")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Borrowed("")))
    }
    fn visit_none<E: de::Error>(self) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Borrowed("")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Owned(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell<'de>, E> {
        Ok(Cell(Cow::Owned(
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
        )))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Cell<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

/// One row: an array of cells, or a lone cell (a payload with a one-key schema may send its
/// rows as plain values).
enum Row<'a> {
    Cells(Vec<Cell<'a>>),
    Scalar(Cell<'a>),
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Row<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row<'de>, A::Error> {
        let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(cell) = seq.next_element()? {
            cells.push(cell);
        }
        Ok(Row::Cells(cells))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Row<'de>, E> {
        CellVisitor.visit_borrowed_str(v).map(Row::Scalar)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Row<'de>, E> {
        CellVisitor.visit_str(v).map(Row::Scalar)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Row<'de>, E> {
        CellVisitor.visit_string(v).map(Row::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Row<'de>, E> {
        CellVisitor.visit_unit().map(Row::Scalar)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Row<'de>, E> {
        CellVisitor.visit_u64(v).map(Row::Scalar)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Row<'de>, E> {
        CellVisitor.visit_i64(v).map(Row::Scalar)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Row<'de>, E> {
        CellVisitor.visit_f64(v).map(Row::Scalar)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Row<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RowVisitor)
    }
}

/// The schema: one key or an array of keys.
enum Schema<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Schema<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SchemaVisitor;
        impl<'de> Visitor<'de> for SchemaVisitor {
            type Value = Schema<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a schema key or an array of schema keys (strings)")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Schema<'de>, E> {
                Ok(Schema::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Schema<'de>, E> {
                Ok(Schema::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Schema<'de>, A::Error> {
                let mut keys = Vec::new();
                // keys are a few short strings: copied (serde's `Cow` never borrows anyway)
                while let Some(key) = seq.next_element::<String>()? {
                    keys.push(Cow::Owned(key));
                }
                Ok(Schema::Many(keys))
            }
        }
        d.deserialize_any(SchemaVisitor)
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    schema: Option<Schema<'a>>,
    #[serde(borrow)]
    data: Option<Vec<Row<'a>>>,
}

/// Checks `payload` (a JSON string): schema keys, widths, row count, value shapes. The rows
/// are copied out only with `keep_rows` (benchmarks keep counts alone): the cells are checked
/// where they are, in the payload.
pub(crate) fn check_payload(raw: &str, keep_rows: bool) -> Result<CheckedPayload, String> {
    let wire: Wire<'_> = serde_json::from_str(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            "payload is not valid JSON".to_owned()
        } else {
            format!("invalid payload: {e}")
        }
    })?;
    let (schema, single): (Vec<Cow<'_, str>>, bool) = match wire.schema {
        Some(Schema::One(key)) => (vec![key], true),
        Some(Schema::Many(keys)) => (keys, false),
        None => return Err("payload has no schema".into()),
    };
    if schema.is_empty() {
        return Err("schema is empty".into());
    }
    let mut keys = Vec::with_capacity(schema.len());
    for name in &schema {
        let key = MemberKey::parse(name).ok_or_else(|| format!("unknown schema key {name}"))?;
        if keys.contains(&key) {
            return Err(format!("duplicate schema key {name}"));
        }
        keys.push(key);
    }
    let data = wire
        .data
        .ok_or_else(|| "payload has no data array".to_owned())?;
    if data.is_empty() {
        return Err("data is empty".into());
    }
    if data.len() > MAX_BATCH_SIZE {
        return Err(format!(
            "too many rows: {} (at most {MAX_BATCH_SIZE} per request)",
            data.len()
        ));
    }
    let received = data.len() as u64;
    let mut rows = Vec::with_capacity(if keep_rows { data.len() } else { 0 });
    let mut num_invalid_entries = 0;
    let mut invalid_samples = Vec::new();
    for (i, row) in data.into_iter().enumerate() {
        let cells: Vec<Cell<'_>> = match row {
            Row::Cells(cells) => cells,
            Row::Scalar(cell) if single => vec![cell],
            Row::Scalar(_) => return Err(format!("row {i} is not an array")),
        };
        if cells.len() != schema.len() {
            return Err(format!(
                "row {i} has {} values but the schema has {} keys",
                cells.len(),
                schema.len()
            ));
        }
        let mut bad = cells.iter().all(|c| c.0.is_empty());
        for (key, Cell(v)) in keys.iter().zip(&cells) {
            if v.is_empty() {
                continue;
            }
            let ok = if key.is_hashed() {
                is_hex64(v)
            } else {
                // MADID is sent in clear, lowercase: a hash or upper case is wrong
                !is_hex64(v) && !v.bytes().any(|b| b.is_ascii_uppercase())
            };
            bad |= !ok;
        }
        if bad {
            num_invalid_entries += 1;
            if invalid_samples.len() < 5 {
                let texts: Vec<&str> = cells.iter().map(|c| c.0.as_ref()).collect();
                invalid_samples.push(texts.join(","));
            }
        }
        if keep_rows {
            rows.push(cells.into_iter().map(|c| c.0.into_owned()).collect());
        }
    }
    Ok(CheckedPayload {
        schema: schema.into_iter().map(Cow::into_owned).collect(),
        rows,
        received,
        num_invalid_entries,
        invalid_samples,
    })
}

/// Checks the `session` parameter.
pub(crate) fn check_session(raw: &str) -> Result<SessionParam, String> {
    let value: Value =
        serde_json::from_str(raw).map_err(|_| "session is not valid JSON".to_owned())?;
    let obj = value
        .as_object()
        .ok_or_else(|| "session must be an object".to_owned())?;
    let int = |name: &str| -> Result<Option<u64>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("session {name} must be a positive integer")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("session {name} must be a positive integer")),
            Some(_) => Err(format!("session {name} must be a positive integer")),
        }
    };
    let session_id = int("session_id")?
        .filter(|v| *v > 0 && *v <= i64::MAX as u64)
        .ok_or_else(|| "session_id must be a positive 64-bit integer".to_owned())?;
    let batch_seq = int("batch_seq")?
        .filter(|v| *v >= 1)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| "batch_seq must be 1 or more".to_owned())?;
    let last_batch_flag = match obj.get("last_batch_flag") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        None => false,
        Some(_) => return Err("last_batch_flag must be a boolean".into()),
    };
    let estimated_num_total = int("estimated_num_total")?;
    Ok(SessionParam {
        session_id,
        batch_seq,
        last_batch_flag,
        estimated_num_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";

    #[test]
    fn valid_payloads_are_counted() {
        let p = check_payload(&format!(
            r#"{{"schema":["EMAIL","MADID"],"data":[["{H}",""],["","6f0e1b2c-aaaa-bbbb-cccc-0123456789ab"],["",""],["ABC",""]]}}"#
        ), true)
        .unwrap();
        assert_eq!(p.rows.len(), 4);
        // an all-empty row and a non-hex hash are invalid
        assert_eq!(p.num_invalid_entries, 2);
    }

    #[test]
    fn cells_may_be_escaped_null_numbers_or_lone_values() {
        let escaped = r#"{"schema":["MADID","EMAIL"],"data":[["a\u0062c",null],["x\/y",42]]}"#;
        let p = check_payload(escaped, true).unwrap();
        assert_eq!(
            p.rows,
            vec![
                vec!["abc".to_owned(), String::new()],
                vec!["x/y".into(), "42".into()]
            ]
        );
        let lone = format!(r#"{{"schema":"EMAIL","data":["{H}","{H}"]}}"#);
        let p = check_payload(&lone, true).unwrap();
        assert_eq!(
            (p.schema.clone(), p.rows.len()),
            (vec!["EMAIL".to_owned()], 2)
        );
        // a lone value needs a one-key schema, and cells are strings, numbers or null
        for bad in [
            format!(r#"{{"schema":["EMAIL"],"data":["{H}"]}}"#),
            r#"{"schema":["MADID"],"data":[[true]]}"#.to_owned(),
            r#"{"schema":["MADID"],"data":[[{"a":1}]]}"#.to_owned(),
            r#"{"schema":[1],"data":[["a"]]}"#.to_owned(),
            r#"{"data":[["a"]]}"#.to_owned(),
            r#"{"schema":["MADID"]}"#.to_owned(),
        ] {
            assert!(check_payload(&bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_keeping_rows_the_counts_are_the_same() {
        let raw =
            format!(r#"{{"schema":["EMAIL","MADID"],"data":[["{H}",""],["","ABC"],["",""]]}}"#);
        let (kept, counted) = (
            check_payload(&raw, true).unwrap(),
            check_payload(&raw, false).unwrap(),
        );
        assert!(counted.rows.is_empty());
        assert_eq!(
            (
                kept.received,
                kept.num_invalid_entries,
                kept.invalid_samples
            ),
            (
                counted.received,
                counted.num_invalid_entries,
                counted.invalid_samples
            )
        );
        assert_eq!((counted.received, counted.num_invalid_entries), (3, 2));
    }

    #[test]
    fn bad_shapes_are_rejected() {
        for bad in [
            r#"{"schema":["NOPE"],"data":[["a"]]}"#,
            r#"{"schema":["EMAIL","EMAIL"],"data":[["a","b"]]}"#,
            r#"{"schema":["EMAIL","FN"],"data":[["a"]]}"#,
            r#"{"schema":["EMAIL"],"data":[]}"#,
            r#"not json"#,
        ] {
            assert!(check_payload(bad, true).is_err(), "{bad}");
        }
        let rows: Vec<Vec<&str>> = (0..10_001).map(|_| vec![H]).collect();
        let big = serde_json::json!({"schema": ["EMAIL"], "data": rows}).to_string();
        assert!(
            check_payload(&big, true)
                .unwrap_err()
                .contains("too many rows")
        );
        let hashed_madid = format!(r#"{{"schema":["MADID"],"data":[["{H}"]]}}"#);
        assert_eq!(
            check_payload(&hashed_madid, true)
                .unwrap()
                .num_invalid_entries,
            1
        );
    }

    #[test]
    fn sessions_are_checked() {
        let s = check_session(r#"{"session_id":9,"batch_seq":1,"last_batch_flag":false}"#).unwrap();
        assert_eq!(
            (s.session_id, s.batch_seq, s.last_batch_flag),
            (9, 1, false)
        );
        assert!(check_session(r#"{"session_id":0,"batch_seq":1}"#).is_err());
        assert!(check_session(r#"{"session_id":3,"batch_seq":0}"#).is_err());
        assert!(check_session(r#"{"session_id":3,"batch_seq":1,"last_batch_flag":"x"}"#).is_err());
    }
}
