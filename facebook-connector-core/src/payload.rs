//! Upload payloads: `{"schema": [...], "data": [[...], ...]}` with at most
//! [`MAX_BATCH_SIZE`] rows, and the streaming [`PayloadBuilder`] that cuts a stream of
//! members into them.

use std::sync::Arc;

use crate::error::InvalidValue;
use crate::member::{AudienceMember, DIGEST_LEN, Digest, HASH_HEX_LEN, MemberKey, write_json_str};

/// Facebook's limit of rows per upload request.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// One encoded upload payload. The JSON is built once, by the payload builder or by
/// [`Payload::from_rows`], and sent as is; clones share it ([`Payload::shared_json`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    schema: Vec<MemberKey>,
    rows: usize,
    json: Arc<String>,
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
            json: Arc::new(json),
        }
    }

    /// Wraps JSON that the builder encoded for `schema` and `rows` rows.
    pub(crate) fn from_encoded(schema: Vec<MemberKey>, rows: usize, json: String) -> Payload {
        Payload {
            schema,
            rows,
            json: Arc::new(json),
        }
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

    /// The JSON, shared: a sender that outlives the borrow of the payload (a streamed request
    /// body) holds it without copying ~10 MB.
    pub fn shared_json(&self) -> Arc<String> {
        Arc::clone(&self.json)
    }

    /// Takes the JSON out (copied only when a clone still shares it).
    pub fn into_json(self) -> String {
        Arc::try_unwrap(self.json).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// Cuts a stream of members, in input order, into [`Payload`]s of `batch_size` rows (the last
/// one may be smaller). Unmatchable members are skipped. The schema of each payload holds the
/// keys that at least one of its members has, in [`MemberKey`] order; rows hold `""` for
/// missing values. Memory stays bounded by one batch: members are kept compactly (present
/// keys and their values) until the batch is full, then encoded straight into the JSON.
///
/// ```
/// use facebook_connector_core::member::{AudienceMember, MemberKey};
/// use facebook_connector_core::payload::PayloadBuilder;
///
/// let mut builder = PayloadBuilder::new(2).unwrap();
/// let mut member = AudienceMember::new();
/// member.set(MemberKey::MADID, "abc").unwrap();
/// assert!(builder.push(&member).is_none());
/// assert!(builder.push(&AudienceMember::new()).is_none()); // unmatchable: skipped
/// let full = builder.push(&member).unwrap();
/// assert_eq!(full.as_json(), r#"{"schema":["MADID"],"data":[["abc"],["abc"]]}"#);
/// assert!(builder.finish().is_none());
/// ```
#[derive(Clone, Debug)]
pub struct PayloadBuilder {
    batch_size: usize,
    /// Per buffered row: its key mask.
    rows: Vec<u16>,
    /// The rows' digests back to back, in row and key order (hex-encoded only into the JSON).
    digests: Vec<Digest>,
    /// The rows' MADIDs, JSON-encoded with their quotes, back to back.
    madids: String,
    /// Where each MADID in `madids` ends.
    madid_ends: Vec<usize>,
    /// Union of the buffered rows' key masks.
    keys: u16,
}

impl PayloadBuilder {
    /// A builder of payloads of at most `batch_size` rows (1..=[`MAX_BATCH_SIZE`]).
    pub fn new(batch_size: usize) -> Result<Self, InvalidValue> {
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(InvalidValue::new(
                "batch size",
                &batch_size.to_string(),
                "must be between 1 and 10000",
            ));
        }
        Ok(PayloadBuilder {
            batch_size,
            rows: Vec::with_capacity(batch_size),
            digests: Vec::new(),
            madids: String::new(),
            madid_ends: Vec::new(),
            keys: 0,
        })
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Members buffered for the next payload.
    pub fn pending(&self) -> usize {
        self.rows.len()
    }

    /// Adds a member (skipped when unmatchable); returns the payload when the batch is full.
    pub fn push(&mut self, member: &AudienceMember) -> Option<Payload> {
        if !member.is_matchable() {
            return None;
        }
        self.rows.push(member.key_mask());
        self.keys |= member.key_mask();
        let mut remaining = member.key_mask();
        while remaining != 0 {
            let key = MemberKey::ALL[remaining.trailing_zeros() as usize];
            remaining &= remaining - 1;
            if key == MemberKey::MADID {
                write_json_str(&mut self.madids, member.madid().unwrap_or_default());
                self.madid_ends.push(self.madids.len());
            } else {
                self.digests
                    .push(member.digest(key).copied().unwrap_or([0; DIGEST_LEN]));
            }
        }
        if self.rows.len() >= self.batch_size {
            self.take()
        } else {
            None
        }
    }

    /// Encodes what is buffered (if anything) as the last payload.
    pub fn flush(&mut self) -> Option<Payload> {
        self.take()
    }

    /// [`PayloadBuilder::flush`], consuming the builder.
    pub fn finish(mut self) -> Option<Payload> {
        self.take()
    }

    fn take(&mut self) -> Option<Payload> {
        if self.rows.is_empty() {
            return None;
        }
        let schema: Vec<MemberKey> = MemberKey::ALL
            .into_iter()
            .filter(|k| self.keys & (1 << k.index()) != 0)
            .collect();
        let row_estimate = self.digests.len() * (HASH_HEX_LEN + 3)
            + self.madids.len()
            + self.rows.len() * (3 * schema.len() + 3);
        let mut json = String::with_capacity(32 + schema.len() * 10 + row_estimate);
        json.push_str("{\"schema\":[");
        for (i, k) in schema.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('"');
            json.push_str(k.as_str());
            json.push('"');
        }
        json.push_str("],\"data\":[");
        let cells: Vec<(u16, bool)> = schema
            .iter()
            .map(|k| (1 << k.index(), *k == MemberKey::MADID))
            .collect();
        let mut digests = self.digests.iter();
        let mut madid_start = 0;
        let mut madid_ends = self.madid_ends.iter();
        let mut hex = const_hex::Buffer::<DIGEST_LEN>::new();
        for &mask in &self.rows {
            json.push('[');
            for &(bit, is_madid) in &cells {
                if mask & bit == 0 {
                    json.push_str("\"\",");
                } else if is_madid {
                    let end = madid_ends.next().copied().unwrap_or(madid_start);
                    json.push_str(self.madids.get(madid_start..end).unwrap_or("\"\""));
                    json.push(',');
                    madid_start = end;
                } else {
                    json.push('"');
                    json.push_str(hex.format(digests.next().unwrap_or(&[0; DIGEST_LEN])));
                    json.push_str("\",");
                }
            }
            // the row's last comma gives way to its bracket
            if json.ends_with(',') {
                json.pop();
            }
            json.push_str("],");
        }
        json.pop(); // the last row's comma
        json.push_str("]}");
        let rows = self.rows.len();
        self.rows.clear();
        self.digests.clear();
        self.madids.clear();
        self.madid_ends.clear();
        self.keys = 0;
        Some(Payload::from_encoded(schema, rows, json))
    }

    /// Builds every payload of a stream of members (unmatchable ones skipped).
    pub fn batches<I>(self, members: I) -> Batches<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<AudienceMember>,
    {
        Batches {
            builder: Some(self),
            members: members.into_iter(),
        }
    }
}

/// The payloads of a stream of members; see [`PayloadBuilder::batches`].
pub struct Batches<I> {
    builder: Option<PayloadBuilder>,
    members: I,
}

impl<I> Iterator for Batches<I>
where
    I: Iterator,
    I::Item: std::borrow::Borrow<AudienceMember>,
{
    type Item = Payload;
    fn next(&mut self) -> Option<Payload> {
        let builder = self.builder.as_mut()?;
        for member in self.members.by_ref() {
            if let Some(p) = builder.push(std::borrow::Borrow::borrow(&member)) {
                return Some(p);
            }
        }
        self.builder.take().and_then(PayloadBuilder::finish)
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
        assert_eq!(
            p.as_json(),
            r#"{"schema":["EMAIL","MADID"],"data":[["ab",""]]}"#
        );
        assert_eq!(p.len(), 1);
        assert_eq!(Payload::from_encoded(vec![], 0, String::new()).len(), 0);
    }

    fn member(pairs: &[(MemberKey, &str)]) -> AudienceMember {
        let mut m = AudienceMember::new();
        for (k, v) in pairs {
            if *k == MemberKey::MADID {
                m.set(*k, v).unwrap();
            } else {
                m.set_hash_of(*k, v);
            }
        }
        m
    }

    #[test]
    fn batch_size_is_validated() {
        assert!(PayloadBuilder::new(0).is_err());
        assert!(PayloadBuilder::new(10_001).is_err());
        assert_eq!(PayloadBuilder::new(10_000).unwrap().batch_size(), 10_000);
        assert_eq!(PayloadBuilder::new(1).unwrap().batch_size(), 1);
        let e = PayloadBuilder::new(0).unwrap_err().to_string();
        assert!(e.contains("batch size"), "{e}");
    }

    #[test]
    fn builder_matches_from_rows_and_skips_unmatchable() {
        let a = member(&[(MemberKey::EMAIL, "a@b.c"), (MemberKey::ZIP, "94107")]);
        let b = member(&[(MemberKey::MADID, "id-\"q\"\\"), (MemberKey::DOBD, "04")]);
        let unmatchable = member(&[(MemberKey::FN, "john"), (MemberKey::GEN, "m")]);
        let c = member(&[(MemberKey::FN, "john"), (MemberKey::LN, "smith")]);
        let payloads: Vec<Payload> = PayloadBuilder::new(2)
            .unwrap()
            .batches([&a, &unmatchable, &b, &c])
            .collect();
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0].len(), 2);
        assert_eq!(payloads[1].len(), 1);
        let rows = |members: &[&AudienceMember], schema: &[MemberKey]| -> Vec<Vec<String>> {
            members
                .iter()
                .map(|m| {
                    schema
                        .iter()
                        .map(|k| m.get(*k).map(|v| v.to_string()).unwrap_or_default())
                        .collect()
                })
                .collect()
        };
        let schema0 = vec![
            MemberKey::DOBD,
            MemberKey::EMAIL,
            MemberKey::MADID,
            MemberKey::ZIP,
        ];
        assert_eq!(payloads[0].schema(), &schema0[..]);
        let expected0 = Payload::from_rows(schema0.clone(), &rows(&[&a, &b], &schema0));
        assert_eq!(payloads[0], expected0);
        let schema1 = vec![MemberKey::FN, MemberKey::FI, MemberKey::LN];
        let schema1: Vec<MemberKey> = schema1.into_iter().filter(|k| c.has(*k)).collect();
        assert_eq!(
            payloads[1],
            Payload::from_rows(schema1.clone(), &rows(&[&c], &schema1))
        );
        // parses back with the MADID intact
        let v: serde_json::Value = serde_json::from_str(payloads[0].as_json()).unwrap();
        assert_eq!(v["data"][1][2], "id-\"q\"\\");
        assert_eq!(v["data"][0][2], "");
    }

    #[test]
    fn original_connector_payload_is_byte_identical() {
        // FacebookClientSpec: two members, all of the first ten keys between them.
        let h = |s: &str| s.to_string();
        let mut m1 = AudienceMember::new();
        for (k, v) in [
            (
                MemberKey::DOBD,
                h("4a44dc15364204a80fe80e9039455cc1608281820fe2b24f1e5233ade6af1dd5"),
            ),
            (
                MemberKey::DOBM,
                h("0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5"),
            ),
            (
                MemberKey::DOBY,
                h("051c2e380d07844ffaca43743957f8c0efe2bdf74c6c1e6a9dcccb8d1a3c596b"),
            ),
            (
                MemberKey::COUNTRY,
                h("79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
            ),
            (
                MemberKey::EMAIL,
                h("d64ac45af268c53ea74ad3ef3dbc7102cd0aa9b63cb59456122be981d3bf2ade"),
            ),
            (
                MemberKey::FN,
                h("2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"),
            ),
            (
                MemberKey::FI,
                h("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"),
            ),
            (
                MemberKey::LN,
                h("c9561ea9ac17200ef167c850f3268f346f737ad0d3c48ed3996a9ca73689803c"),
            ),
            (MemberKey::MADID, h("966a15b1-6505-4cb7-ba30-3342c5019112")),
        ] {
            m1.set(k, &v).unwrap();
        }
        let mut m2 = AudienceMember::new();
        m2.set(
            MemberKey::GEN,
            "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a",
        )
        .unwrap();
        m2.set(MemberKey::MADID, "966a15b1-6505-4cb7-ba30-3342c5019112")
            .unwrap();
        let mut b = PayloadBuilder::new(MAX_BATCH_SIZE).unwrap();
        assert!(b.push(&m1).is_none());
        assert!(b.push(&m2).is_none());
        assert_eq!(b.pending(), 2);
        let p = b.finish().unwrap();
        let e = "\"\"";
        let expected = format!(
            concat!(
                r#"{{"schema":["DOBD","DOBM","DOBY","COUNTRY","EMAIL","FN","FI","GEN","LN","MADID"],"data":["#,
                r#"["4a44dc15364204a80fe80e9039455cc1608281820fe2b24f1e5233ade6af1dd5","0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5","051c2e380d07844ffaca43743957f8c0efe2bdf74c6c1e6a9dcccb8d1a3c596b","79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621","d64ac45af268c53ea74ad3ef3dbc7102cd0aa9b63cb59456122be981d3bf2ade","2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90","ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",{e},"c9561ea9ac17200ef167c850f3268f346f737ad0d3c48ed3996a9ca73689803c","966a15b1-6505-4cb7-ba30-3342c5019112"],"#,
                r#"[{e},{e},{e},{e},{e},{e},{e},"62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a",{e},"966a15b1-6505-4cb7-ba30-3342c5019112"]]}}"#
            ),
            e = e
        );
        assert_eq!(p.as_json(), expected);
    }

    #[test]
    fn every_batch_but_the_last_is_full() {
        let m = member(&[(MemberKey::PHONE, "14155550123")]);
        let mut b = PayloadBuilder::new(3).unwrap();
        let mut sizes = Vec::new();
        for _ in 0..10 {
            if let Some(p) = b.push(&m) {
                sizes.push(p.len());
            }
        }
        if let Some(p) = b.flush() {
            sizes.push(p.len());
        }
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert!(b.flush().is_none());
        assert!(
            PayloadBuilder::new(3)
                .unwrap()
                .batches(Vec::<AudienceMember>::new())
                .next()
                .is_none()
        );
    }
}
