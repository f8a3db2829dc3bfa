//! Upload payload and session validation of the fake, as Facebook does it.

use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::MAX_BATCH_SIZE;
use serde_json::Value;

/// A decoded, shape-checked payload.
#[derive(Debug)]
pub(crate) struct CheckedPayload {
    pub(crate) schema: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
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
    v.len() == 64
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn cell(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("invalid value in data: {other}")),
    }
}

/// Checks `payload` (a JSON string): schema keys, widths, row count, value shapes.
pub(crate) fn check_payload(raw: &str) -> Result<CheckedPayload, String> {
    let value: Value =
        serde_json::from_str(raw).map_err(|_| "payload is not valid JSON".to_owned())?;
    let obj = value
        .as_object()
        .ok_or_else(|| "payload must be an object with schema and data".to_owned())?;
    let (schema, single) = match obj.get("schema") {
        Some(Value::String(s)) => (vec![s.clone()], true),
        Some(Value::Array(keys)) => (
            keys.iter()
                .map(|k| {
                    k.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "schema keys must be strings".to_owned())
                })
                .collect::<Result<Vec<_>, _>>()?,
            false,
        ),
        _ => return Err("payload has no schema".into()),
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
    let data = obj
        .get("data")
        .and_then(Value::as_array)
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
    let mut rows = Vec::with_capacity(data.len());
    for (i, row) in data.iter().enumerate() {
        let cells: Vec<String> = match row {
            Value::Array(cells) => cells.iter().map(cell).collect::<Result<_, _>>()?,
            scalar if single => vec![cell(scalar)?],
            _ => return Err(format!("row {i} is not an array")),
        };
        if cells.len() != schema.len() {
            return Err(format!(
                "row {i} has {} values but the schema has {} keys",
                cells.len(),
                schema.len()
            ));
        }
        rows.push(cells);
    }
    let mut num_invalid_entries = 0;
    let mut invalid_samples = Vec::new();
    for row in &rows {
        let mut bad = row.iter().all(String::is_empty);
        for (key, v) in keys.iter().zip(row) {
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
                invalid_samples.push(row.join(","));
            }
        }
    }
    Ok(CheckedPayload {
        schema,
        rows,
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
        ))
        .unwrap();
        assert_eq!(p.rows.len(), 4);
        // an all-empty row and a non-hex hash are invalid
        assert_eq!(p.num_invalid_entries, 2);
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
            assert!(check_payload(bad).is_err(), "{bad}");
        }
        let rows: Vec<Vec<&str>> = (0..10_001).map(|_| vec![H]).collect();
        let big = serde_json::json!({"schema": ["EMAIL"], "data": rows}).to_string();
        assert!(check_payload(&big).unwrap_err().contains("too many rows"));
        let hashed_madid = format!(r#"{{"schema":["MADID"],"data":[["{H}"]]}}"#);
        assert_eq!(check_payload(&hashed_madid).unwrap().num_invalid_entries, 1);
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
