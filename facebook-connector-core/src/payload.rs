//! Upload payloads: `{"schema": [...], "data": [[...], ...]}` with at most
//! [`MAX_BATCH_SIZE`] rows, and the streaming [`PayloadBuilder`] that cuts a stream of
//! members into them.

use std::sync::Arc;

use crate::error::InvalidValue;
use crate::member::{AudienceMember, DIGEST_LEN, Digest, HASH_HEX_LEN, MemberKey, write_json_str};

/// Facebook's limit of rows per upload request.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// One upload payload. The builder's payloads hold their members compactly (key masks, 32-byte
/// digests, MADIDs) and are written out only as they are sent, in the encoding the sender needs
/// ([`Payload::text`]): straight into a form body for the Graph API, without a JSON copy that is
/// then form-encoded. Clones share the rows.
#[derive(Clone, Debug)]
pub struct Payload {
    schema: Vec<MemberKey>,
    rows: usize,
    body: Arc<Body>,
}

#[derive(Debug)]
enum Body {
    /// JSON given as is ([`Payload::from_rows`]).
    Json(String),
    /// The builder's rows.
    Members(Members),
}

/// A batch of members as the builder keeps them.
#[derive(Clone, Debug, Default)]
struct Members {
    /// Per row: its key mask.
    masks: Vec<u16>,
    /// The rows' digests back to back, in row and key order.
    digests: Vec<Digest>,
    /// The rows' MADIDs, JSON-encoded with their quotes, back to back.
    madids: String,
    /// Where each MADID in `madids` ends.
    madid_ends: Vec<usize>,
}

/// How a payload's text is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The JSON itself.
    Json,
    /// The JSON as the value of an `application/x-www-form-urlencoded` field ([`crate::form`]).
    Form,
}

/// Two payloads are equal when they have the same schema and text.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.schema == other.schema && self.rows == other.rows && self.to_json() == other.to_json()
    }
}

impl Eq for Payload {}

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
            body: Arc::new(Body::Json(json)),
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

    /// Exactly the `payload` parameter Facebook receives, as one string.
    pub fn to_json(&self) -> String {
        let mut text = self.text(Encoding::Json);
        let mut out = Vec::with_capacity(text.len());
        while let Some(chunk) = text.next_chunk(usize::MAX) {
            out.extend_from_slice(&chunk);
        }
        // JSON text of strings is UTF-8
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The payload's text in `encoding`, written piece by piece ([`PayloadText::next_chunk`]),
    /// with its exact length known up front.
    pub fn text(&self, encoding: Encoding) -> PayloadText {
        PayloadText::new(self.clone(), encoding)
    }
}

/// Punctuation of the rows, as written in one encoding.
struct Marks {
    quote: &'static [u8],
    comma: &'static [u8],
    open: &'static [u8],
    close: &'static [u8],
}

const JSON_MARKS: Marks = Marks {
    quote: b"\"",
    comma: b",",
    open: b"[",
    close: b"]",
};

const FORM_MARKS: Marks = Marks {
    quote: b"%22",
    comma: b"%2C",
    open: b"%5B",
    close: b"%5D",
};

/// A payload's text being written: [`PayloadText::len`] bytes in all, in pieces.
#[derive(Debug)]
pub struct PayloadText {
    payload: Payload,
    encoding: Encoding,
    len: usize,
    /// Members: the schema and the opening of the data, encoded; written with the first piece.
    head: Option<Vec<u8>>,
    done: bool,
    /// Given JSON: bytes of it written. Members: rows written.
    at: usize,
    /// Members: digests and MADIDs written, and where the next MADID starts in `madids`.
    digest_at: usize,
    madid_at: usize,
    madid_start: usize,
    /// Members: per schema key, its bit and whether it is the MADID.
    cells: Vec<(u16, bool)>,
}

impl PayloadText {
    fn new(payload: Payload, encoding: Encoding) -> PayloadText {
        let cells = payload
            .schema
            .iter()
            .map(|k| (1 << k.index(), *k == MemberKey::MADID))
            .collect();
        let mut text = PayloadText {
            payload,
            encoding,
            len: 0,
            head: None,
            done: false,
            at: 0,
            digest_at: 0,
            madid_at: 0,
            madid_start: 0,
            cells,
        };
        if matches!(*text.payload.body, Body::Members(_)) {
            text.head = Some(text.encoded_head());
        }
        text.len = text.count();
        text
    }

    /// Bytes of the whole text.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the text is empty (it never is: even no rows have a schema).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn marks(&self) -> &'static Marks {
        match self.encoding {
            Encoding::Json => &JSON_MARKS,
            Encoding::Form => &FORM_MARKS,
        }
    }

    /// Appends `json` (punctuation, schema names, a MADID's JSON string) in the encoding.
    fn put(&self, out: &mut Vec<u8>, json: &[u8]) {
        match self.encoding {
            Encoding::Json => out.extend_from_slice(json),
            Encoding::Form => crate::form::encode_into(out, json),
        }
    }

    fn put_len(&self, json: &[u8]) -> usize {
        match self.encoding {
            Encoding::Json => json.len(),
            Encoding::Form => crate::form::encoded_len(json),
        }
    }

    fn encoded_head(&self) -> Vec<u8> {
        let mut json = String::from("{\"schema\":[");
        for (i, k) in self.payload.schema.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('"');
            json.push_str(k.as_str());
            json.push('"');
        }
        json.push_str("],\"data\":[");
        let mut out = Vec::new();
        self.put(&mut out, json.as_bytes());
        out
    }

    const TAIL: &'static [u8] = b"]}";

    /// The length of the text, from the counts of rows, digests and MADIDs.
    fn count(&self) -> usize {
        match &*self.payload.body {
            Body::Json(json) => self.put_len(json.as_bytes()),
            Body::Members(m) => {
                let marks = self.marks();
                let rows = m.masks.len();
                let cells = rows * self.cells.len();
                let madids = m.madid_ends.len();
                let empty = cells - m.digests.len() - madids;
                let mut madid_len = 0;
                let mut start = 0;
                for &end in &m.madid_ends {
                    madid_len +=
                        self.put_len(m.madids.as_bytes().get(start..end).unwrap_or_default());
                    start = end;
                }
                self.head.as_ref().map_or(0, Vec::len)
                    + rows * (marks.open.len() + marks.close.len())
                    + (cells - rows) * marks.comma.len()
                    + rows.saturating_sub(1) * marks.comma.len()
                    + m.digests.len() * (2 * marks.quote.len() + HASH_HEX_LEN)
                    + empty * 2 * marks.quote.len()
                    + madid_len
                    + self.put_len(Self::TAIL)
            }
        }
    }

    /// The next piece of the text, of about `size` bytes (whole rows), or `None` when all of
    /// it was written.
    pub fn next_chunk(&mut self, size: usize) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let body = Arc::clone(&self.payload.body);
        match &*body {
            Body::Json(json) => {
                let bytes = json.as_bytes();
                let end = self.at.saturating_add(size).min(bytes.len());
                let mut out = Vec::with_capacity(end - self.at);
                self.put(&mut out, &bytes[self.at..end]);
                self.at = end;
                self.done = end == bytes.len();
                Some(out)
            }
            Body::Members(m) => {
                let marks = self.marks();
                let mut out = Vec::with_capacity(size.min(self.len) + 1024);
                if let Some(head) = self.head.take() {
                    out.extend_from_slice(&head);
                }
                let mut hex = const_hex::Buffer::<DIGEST_LEN>::new();
                while self.at < m.masks.len() && out.len() < size {
                    if self.at > 0 {
                        out.extend_from_slice(marks.comma);
                    }
                    let mask = m.masks[self.at];
                    out.extend_from_slice(marks.open);
                    for (i, &(bit, is_madid)) in self.cells.iter().enumerate() {
                        if i > 0 {
                            out.extend_from_slice(marks.comma);
                        }
                        if mask & bit == 0 {
                            out.extend_from_slice(marks.quote);
                            out.extend_from_slice(marks.quote);
                        } else if is_madid {
                            let start = self.madid_start;
                            let end = m.madid_ends.get(self.madid_at).copied().unwrap_or(start);
                            self.put(
                                &mut out,
                                m.madids.as_bytes().get(start..end).unwrap_or_default(),
                            );
                            self.madid_at += 1;
                            self.madid_start = end;
                        } else {
                            let digest = m.digests.get(self.digest_at).unwrap_or(&[0; DIGEST_LEN]);
                            self.digest_at += 1;
                            out.extend_from_slice(marks.quote);
                            out.extend_from_slice(hex.format(digest).as_bytes());
                            out.extend_from_slice(marks.quote);
                        }
                    }
                    out.extend_from_slice(marks.close);
                    self.at += 1;
                }
                if self.at == m.masks.len() {
                    self.put(&mut out, Self::TAIL);
                    self.done = true;
                }
                Some(out)
            }
        }
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
/// assert_eq!(full.to_json(), r#"{"schema":["MADID"],"data":[["abc"],["abc"]]}"#);
/// assert!(builder.finish().is_none());
/// ```
#[derive(Clone, Debug)]
pub struct PayloadBuilder {
    batch_size: usize,
    /// The rows of the next payload.
    members: Members,
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
            members: Members::default(),
            keys: 0,
        })
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Members buffered for the next payload.
    pub fn pending(&self) -> usize {
        self.members.masks.len()
    }

    /// Adds a member (skipped when unmatchable); returns the payload when the batch is full.
    pub fn push(&mut self, member: &AudienceMember) -> Option<Payload> {
        if !member.is_matchable() {
            return None;
        }
        let m = &mut self.members;
        m.masks.push(member.key_mask());
        self.keys |= member.key_mask();
        let mut remaining = member.key_mask();
        while remaining != 0 {
            let key = MemberKey::ALL[remaining.trailing_zeros() as usize];
            remaining &= remaining - 1;
            if key == MemberKey::MADID {
                write_json_str(&mut m.madids, member.madid().unwrap_or_default());
                m.madid_ends.push(m.madids.len());
            } else {
                m.digests
                    .push(member.digest(key).copied().unwrap_or([0; DIGEST_LEN]));
            }
        }
        if m.masks.len() >= self.batch_size {
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
        if self.members.masks.is_empty() {
            return None;
        }
        let schema: Vec<MemberKey> = MemberKey::ALL
            .into_iter()
            .filter(|k| self.keys & (1 << k.index()) != 0)
            .collect();
        // the next batch is sized like this one
        let next = Members {
            masks: Vec::with_capacity(self.members.masks.len()),
            digests: Vec::with_capacity(self.members.digests.len()),
            madids: String::with_capacity(self.members.madids.len()),
            madid_ends: Vec::with_capacity(self.members.madid_ends.len()),
        };
        let members = std::mem::replace(&mut self.members, next);
        self.keys = 0;
        Some(Payload {
            schema,
            rows: members.masks.len(),
            body: Arc::new(Body::Members(members)),
        })
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
            p.to_json(),
            r#"{"schema":["EMAIL","MADID"],"data":[["ab",""]]}"#
        );
        assert_eq!(p.len(), 1);
        assert!(Payload::from_rows(vec![], &[]).is_empty());
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
        let v: serde_json::Value = serde_json::from_str(&payloads[0].to_json()).unwrap();
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
        assert_eq!(p.to_json(), expected);
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

    /// All of a text, written `size` bytes at a time; checks the announced length.
    fn written(payload: &Payload, encoding: Encoding, size: usize) -> Vec<u8> {
        let mut text = payload.text(encoding);
        let announced = text.len();
        let mut out = Vec::new();
        while let Some(chunk) = text.next_chunk(size) {
            out.extend_from_slice(&chunk);
        }
        assert!(text.next_chunk(size).is_none());
        assert_eq!(
            out.len(),
            announced,
            "announced length ({encoding:?}, {size})"
        );
        out
    }

    fn form_reference(json: &str) -> Vec<u8> {
        url::form_urlencoded::byte_serialize(json.as_bytes())
            .collect::<String>()
            .into_bytes()
    }

    proptest::proptest! {
        /// The builder's rows written as JSON are the JSON a generic serialiser writes, and
        /// written for a form they are the url crate's encoding of that JSON, whatever the
        /// piece size; every text is exactly as long as announced.
        #[test]
        fn texts_are_json_and_its_form_encoding(
            rows in proptest::collection::vec(
                (proptest::option::of("[a-z0-9@.]{1,12}"), proptest::option::of("\\PC{1,10}"), proptest::option::of("[0-9]{5}")),
                1..40,
            ),
            size in proptest::prop_oneof![Just(1usize), 1usize..400, Just(usize::MAX)],
        ) {
            let mut builder = PayloadBuilder::new(MAX_BATCH_SIZE).unwrap();
            let mut expected_rows = Vec::new();
            for (email, madid, zip) in &rows {
                let mut m = AudienceMember::new();
                if let Some(e) = email { m.set_hash_of(MemberKey::EMAIL, e); }
                if let Some(z) = zip { m.set_hash_of(MemberKey::ZIP, z); }
                if let Some(id) = madid { m.set(MemberKey::MADID, id).unwrap(); }
                assert!(builder.push(&m).is_none());
                if m.is_matchable() {
                    expected_rows.push(m);
                }
            }
            let Some(payload) = builder.finish() else {
                proptest::prop_assert!(expected_rows.is_empty());
                return Ok(());
            };
            let schema = payload.schema().to_vec();
            let reference = Payload::from_rows(
                schema.clone(),
                &expected_rows
                    .iter()
                    .map(|m| schema.iter().map(|k| cell(m, *k)).collect())
                    .collect::<Vec<_>>(),
            );
            let json = reference.to_json();
            proptest::prop_assert_eq!(&payload.to_json(), &json);
            proptest::prop_assert_eq!(written(&payload, Encoding::Json, size), json.as_bytes().to_vec());
            proptest::prop_assert_eq!(written(&payload, Encoding::Form, size), form_reference(&json));
            proptest::prop_assert_eq!(written(&reference, Encoding::Form, size), form_reference(&json));
        }
    }

    /// A member's cell as the wire has it: hex digest, MADID as given, or `""`.
    fn cell(m: &AudienceMember, key: MemberKey) -> String {
        if key == MemberKey::MADID {
            m.madid().unwrap_or_default().to_owned()
        } else {
            m.digest(key).map(const_hex::encode).unwrap_or_default()
        }
    }

    use proptest::prelude::Just;
}
