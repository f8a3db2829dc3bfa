//! JSON lines onto [`RawRecord`]: serde visitors that borrow strings from the line (owning
//! them only when they hold escapes) and never fail on a wrongly typed attribute — only on
//! malformed JSON or a line that is not an object.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::field::Field;
use super::raw::{Leaf, RawRecord, Shape, attribute};
use crate::domain::RecordFormat;

/// Reads one JSON line (already checked to be UTF-8: one pass over the line is cheaper than
/// serde_json's check of every string) into `rec`. `Err` means the line is not a JSON object.
pub(crate) fn read_line<'a>(
    line: &'a str,
    format: RecordFormat,
    rec: &mut RawRecord<'a>,
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    match format {
        RecordFormat::Dataset => de.deserialize_map(Attributes { rec, top: true })?,
        RecordFormat::Legacy => de.deserialize_map(LegacyTop { rec })?,
    }
    de.end()
}

/// A map key looked up without allocating (escaped keys included); unknown keys become `None`.
struct Key<F>(F);

impl<'de, T, F: FnOnce(&str) -> Option<T>> DeserializeSeed<'de> for Key<F> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> Option<T>> Visitor<'de> for Key<F> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((self.0)(v))
    }
}

/// `{"data": {...}}`: only `data` is read.
struct LegacyTop<'r, 'a> {
    rec: &'r mut RawRecord<'a>,
}

impl<'de, 'r> Visitor<'de> for LegacyTop<'r, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        fn is_data(k: &str) -> Option<()> {
            (k == "data").then_some(())
        }
        while let Some(key) = map.next_key_seed(Key(is_data))? {
            match key {
                Some(()) => map.next_value_seed(Attributes {
                    rec: &mut *self.rec,
                    top: false,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The attributes object (top level for datasets, `data` for legacy records).
struct Attributes<'r, 'a> {
    rec: &'r mut RawRecord<'a>,
    /// At the top level anything but an object is an error; inside `data` it is a field
    /// rejection.
    top: bool,
}

impl<'de, 'r> DeserializeSeed<'de> for Attributes<'r, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'r> Attributes<'r, 'de> {
    fn wrong<E: serde::de::Error>(self) -> Result<(), E> {
        if self.top {
            return Err(E::custom("not a JSON object"));
        }
        self.rec.reject_structure(Field::Data);
        Ok(())
    }
}

macro_rules! wrong_scalars {
    () => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            self.wrong()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            self.wrong()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            self.wrong()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            self.wrong()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            self.wrong()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq)?;
            self.wrong()
        }
    };
}

impl<'de, 'r> Visitor<'de> for Attributes<'r, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    wrong_scalars!();
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        if self.top {
            return Err(E::custom("not a JSON object"));
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key(attribute))? {
            match key {
                Some(shape) => map.next_value_seed(Value {
                    rec: &mut *self.rec,
                    shape,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One attribute's value, laid out by its [`Shape`].
struct Value<'r, 'a> {
    rec: &'r mut RawRecord<'a>,
    shape: Shape,
}

impl<'de, 'r> DeserializeSeed<'de> for Value<'r, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.shape {
            Shape::Leaf(field) => {
                let leaf = d.deserialize_any(LeafVisitor(PhantomData))?;
                self.rec.set(field, leaf);
                Ok(())
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de, 'r> Value<'r, 'de> {
    /// A scalar where the attribute stands.
    fn scalar<E>(self, leaf: Leaf<'de>) -> Result<(), E> {
        self.rec.set_scalar(self.shape, leaf);
        Ok(())
    }
}

impl<'de, 'r> Visitor<'de> for Value<'r, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar(Leaf::Wrong)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Leaf::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(i64::try_from(v).map_or(Leaf::Wrong, Leaf::Int))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar(Leaf::Wrong)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
        self.scalar(Leaf::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Leaf::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar(Leaf::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        IgnoredAny.visit_seq(seq)?;
        self.scalar(Leaf::Wrong)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let shape = self.shape;
        self.rec.begin_object(shape);
        while let Some(key) = map.next_key_seed(Key(|k: &str| shape.member(k)))? {
            match key {
                Some(field) => {
                    let leaf = map.next_value_seed(LeafVisitor(PhantomData))?;
                    self.rec.set(field, leaf);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A scalar leaf: strings, integers and null; anything else is [`Leaf::Wrong`].
struct LeafVisitor<'a>(PhantomData<&'a ()>);

impl<'de> DeserializeSeed<'de> for LeafVisitor<'de> {
    type Value = Leaf<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Leaf<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LeafVisitor<'de> {
    type Value = Leaf<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Wrong)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Leaf<'de>, E> {
        Ok(i64::try_from(v).map_or(Leaf::Wrong, Leaf::Int))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Wrong)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Leaf<'de>, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Leaf::Wrong)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Leaf<'de>, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Leaf::Wrong)
    }
}
