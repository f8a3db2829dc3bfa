//! Fields that arrive as a string or as a number (`"id": 123` or `"id": "123"`, a lifetime as
//! `3600` or `"3600"`): one serde mechanism for both clients. The value's text is parsed with
//! the target type's [`FromStr`], so ids keep their own validation.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Node {
//!     #[serde(deserialize_with = "connector_resilience::lenient::text")]
//!     id: String,
//!     #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
//!     expires_in: Option<u64>,
//! }
//! let node: Node = serde_json::from_str(r#"{"id": 42, "expires_in": "3600"}"#).unwrap();
//! assert_eq!((node.id.as_str(), node.expires_in), ("42", Some(3600)));
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};

/// A required field: a string or a number, parsed with `T::from_str`; anything else (or a
/// text `T` refuses) is an error.
pub fn text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let raw = deserializer.deserialize_any(TextVisitor)?;
    raw.parse().map_err(de::Error::custom)
}

/// An optional field (use with `#[serde(default)]`): `null` → `None`; a string or number that
/// `T` accepts → `Some`; anything else → `None` (tolerated, like a missing value).
pub fn opt_text<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
{
    let raw = deserializer.deserialize_option(OptVisitor(PhantomData))?;
    Ok(raw.and_then(|s| s.trim().parse().ok()))
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        // 3600.0 reads as "3600", so integers sent as floats still parse as integers
        Ok(v.to_string())
    }
}

/// `Option<String>` for [`opt_text`]: a value of another kind is `None`, not an error.
struct OptVisitor(PhantomData<()>);

impl<'de> Visitor<'de> for OptVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

/// Like [`TextVisitor`], but every other kind of value (and its contents) is read and
/// dropped as `None`.
struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Node {
        #[serde(deserialize_with = "super::text")]
        id: String,
        #[serde(default, deserialize_with = "super::text")]
        count: u64,
        #[serde(default, deserialize_with = "super::opt_text")]
        seconds: Option<u64>,
        #[serde(default, deserialize_with = "super::opt_text")]
        label: Option<String>,
    }

    fn node(json: &str) -> Result<Node, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn strings_and_numbers_alike() {
        let a = node(r#"{"id": 123, "count": "7", "seconds": 3600, "label": 5}"#).unwrap();
        let b = node(r#"{"id": "123", "count": 7, "seconds": "3600", "label": "5"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.id, "123");
        assert_eq!(a.seconds, Some(3600));
        assert_eq!(
            node(r#"{"id": 1, "seconds": 3600.0}"#).unwrap().seconds,
            Some(3600)
        );
    }

    #[test]
    fn optional_fields_tolerate_odd_values() {
        for odd in [
            "null",
            "true",
            "[1]",
            r#"{"a":1}"#,
            r#""soon""#,
            "-5",
            "1.5",
        ] {
            let n = node(&format!(r#"{{"id": 1, "seconds": {odd}}}"#)).unwrap();
            assert_eq!(n.seconds, None, "{odd}");
        }
        assert_eq!(node(r#"{"id": 1}"#).unwrap().seconds, None);
    }

    #[test]
    fn required_fields_are_checked() {
        assert!(node(r#"{"id": true}"#).is_err());
        assert!(node(r#"{"id": [1]}"#).is_err());
        assert!(node(r#"{"id": 1, "count": "many"}"#).is_err());
        assert!(node(r#"{}"#).is_err());
    }
}
