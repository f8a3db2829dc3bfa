//! Upload payloads: `{"schema": [...], "data": [[...], ...]}` with at most
//! [`MAX_BATCH_SIZE`] rows.

use crate::member::MemberKey;

/// Facebook's limit of rows per upload request.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// One encoded upload payload. The JSON is built once, by the payload builder or by
/// [`Payload::from_rows`], and sent as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    schema: Vec<MemberKey>,
    rows: usize,
    json: String,
}

impl Payload {
    /// Encodes rows given as strings per schema key (`""` for missing values). Used by tests
    /// and tools; the delivery path uses the streaming builder.
    ///
    /// Rows wider or narrower than the schema are encoded as given: the caller is responsible
    /// for the shape (the fake Graph API rejects bad shapes, as Facebook does).
    pub fn from_rows(schema: Vec<MemberKey>, rows: &[Vec<String>]) -> Payload {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            schema: Vec<&'static str>,
            data: &'a [Vec<String>],
        }
        let wire = Wire {
            schema: schema.iter().map(|k| k.as_str()).collect(),
            data: rows,
        };
        // Serialising strings into a String cannot fail.
        let json = serde_json::to_string(&wire).unwrap_or_default();
        Payload {
            schema,
            rows: rows.len(),
            json,
        }
    }

    /// Wraps JSON that the builder encoded for `schema` and `rows` rows.
    #[allow(dead_code)] // used by the streaming builder
    pub(crate) fn from_encoded(schema: Vec<MemberKey>, rows: usize, json: String) -> Payload {
        Payload { schema, rows, json }
    }

    /// The schema keys, in order.
    pub fn schema(&self) -> &[MemberKey] {
        &self.schema
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Exactly the `payload` parameter Facebook receives.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// Takes the JSON out.
    pub fn into_json(self) -> String {
        self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_rows_encodes_schema_and_data() {
        let p = Payload::from_rows(
            vec![MemberKey::EMAIL, MemberKey::MADID],
            &[vec!["ab".into(), "".into()]],
        );
        assert_eq!(p.as_json(), r#"{"schema":["EMAIL","MADID"],"data":[["ab",""]]}"#);
        assert_eq!(p.len(), 1);
        assert_eq!(Payload::from_encoded(vec![], 0, String::new()).len(), 0);
    }
}
