//! The intermediate representation shared by the JSON and the Parquet readers: one value per
//! leaf [`Field`], plus the structural rejections found while reading (an attribute object of
//! the wrong type). Both readers map their input onto the same [`Shape`] table, so a dataset
//! row and the same object as JSON give the same [`RawRecord`].

use std::borrow::Cow;

use time::Date;

use super::field::{FIELD_COUNT, Field, FieldSet};

/// One input value, before normalization.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Leaf<'a> {
    /// Absent or null.
    #[default]
    Missing,
    /// A string.
    Str(Cow<'a, str>),
    /// An integer (JSON integer or Parquet integer column).
    Int(i64),
    /// A calendar date in UTC (Parquet timestamp or date columns only).
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    Date(Date),
    /// Any other type (float, boolean, array, object where a scalar is expected).
    Wrong,
}

/// How an attribute is laid out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// A scalar attribute.
    Leaf(Field),
    /// A scalar, or an object whose `value` member is the scalar.
    StrOrValue(Field),
    /// An object with scalar members (the object's own field, and its members' fields).
    Object(Field, &'static [(&'static str, Field)]),
}

const UNIQUE_ID: &[(&str, Field)] = &[
    ("type", Field::UniqueIdType),
    ("value", Field::UniqueIdValue),
];
const HASHED_EMAIL: &[(&str, Field)] = &[
    ("type", Field::HashedEmailType),
    ("value", Field::HashedEmailValue),
];
const SHA256_EMAIL: &[(&str, Field)] = &[("value", Field::Sha256HashedEmailValue)];
const SHA256_PHONE: &[(&str, Field)] = &[("value", Field::Sha256HashedPhoneValue)];
const MOBILE_ID: &[(&str, Field)] = &[("value", Field::MobileIdValue)];
const ANDROID: &[(&str, Field)] = &[("value", Field::AndroidAdIdValue)];
const APPLE: &[(&str, Field)] = &[("value", Field::AppleIdfaValue)];
const PERSON_NAME: &[(&str, Field)] = &[
    ("given_name", Field::GivenName),
    ("family_name", Field::FamilyName),
];
const HL7_GENDER: &[(&str, Field)] = &[("gender", Field::Gender)];
const POSTAL_ADDRESS: &[(&str, Field)] = &[
    ("address_locality", Field::Locality),
    ("address_region", Field::Region),
    ("postal_code", Field::PostalCode),
];

/// The attribute of that name, if the parser reads it.
pub(crate) fn attribute(name: &str) -> Option<Shape> {
    Some(match name {
        "unique_id" => Shape::Object(Field::UniqueId, UNIQUE_ID),
        "hashed_email" => Shape::Object(Field::HashedEmail, HASHED_EMAIL),
        "sha256_hashed_email" => Shape::Object(Field::Sha256HashedEmail, SHA256_EMAIL),
        "normalized_email" => Shape::StrOrValue(Field::NormalizedEmail),
        "raw_email" => Shape::StrOrValue(Field::RawEmail),
        "sha256_hashed_phone_number" => Shape::Object(Field::Sha256HashedPhone, SHA256_PHONE),
        "e164_phone_number" => Shape::StrOrValue(Field::E164Phone),
        "telephone_number" => Shape::StrOrValue(Field::TelephoneNumber),
        "mobile_id_unique_identifier" => Shape::Object(Field::MobileId, MOBILE_ID),
        "android_advertising_id" => Shape::Object(Field::AndroidAdId, ANDROID),
        "apple_idfa" => Shape::Object(Field::AppleIdfa, APPLE),
        "person_name" => Shape::Object(Field::PersonName, PERSON_NAME),
        "hl7_gender" => Shape::Object(Field::Hl7Gender, HL7_GENDER),
        "birthdate" => Shape::Leaf(Field::Birthdate),
        "birth_year" => Shape::Leaf(Field::BirthYear),
        "iso_3166_1_country" => Shape::Leaf(Field::Country),
        "postal_address" => Shape::Object(Field::PostalAddress, POSTAL_ADDRESS),
        _ => return None,
    })
}

/// The member of an object attribute, if the parser reads it.
pub(crate) fn member(children: &'static [(&'static str, Field)], name: &str) -> Option<Field> {
    children.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

impl Shape {
    /// Where the member `name` of this attribute's object goes (`None`: ignored). A scalar
    /// attribute given as an object has no members the parser reads.
    pub(crate) fn member(self, name: &str) -> Option<Field> {
        match self {
            Shape::Leaf(_) => None,
            Shape::StrOrValue(field) => (name == "value").then_some(field),
            Shape::Object(_, children) => member(children, name),
        }
    }
}

/// One record's input values.
#[derive(Debug, PartialEq)]
pub(crate) struct RawRecord<'a> {
    values: [Leaf<'a>; FIELD_COUNT],
    /// Object attributes (or legacy `data`) that had the wrong type.
    pub(crate) structural: FieldSet,
}

impl Default for RawRecord<'_> {
    fn default() -> Self {
        RawRecord {
            values: std::array::from_fn(|_| Leaf::Missing),
            structural: FieldSet::EMPTY,
        }
    }
}

impl<'a> RawRecord<'a> {
    /// The value of a leaf field.
    pub(crate) fn get(&self, field: Field) -> &Leaf<'a> {
        &self.values[field.index()]
    }

    /// Sets a leaf field (the last value wins).
    pub(crate) fn set(&mut self, field: Field, value: Leaf<'a>) {
        self.values[field.index()] = value;
    }

    /// Marks an object attribute as wrongly typed.
    pub(crate) fn reject_structure(&mut self, field: Field) {
        self.structural.insert(field);
    }

    /// The attribute of `shape` given as a scalar: a scalar attribute takes it; an object
    /// attribute is wrongly typed unless the scalar is null.
    pub(crate) fn set_scalar(&mut self, shape: Shape, leaf: Leaf<'a>) {
        match shape {
            Shape::Leaf(field) | Shape::StrOrValue(field) => self.set(field, leaf),
            Shape::Object(field, _) => {
                if leaf != Leaf::Missing {
                    self.reject_structure(field);
                }
            }
        }
    }

    /// The attribute of `shape` given as an object, before its members are read (with
    /// [`Shape::member`]): a scalar attribute is wrongly typed; the fields of the others are
    /// absent until a member sets them, so an object without `value` gives nothing and a
    /// repeated attribute replaces the earlier one whole.
    pub(crate) fn begin_object(&mut self, shape: Shape) {
        match shape {
            Shape::Leaf(field) => self.set(field, Leaf::Wrong),
            Shape::StrOrValue(field) => self.set(field, Leaf::Missing),
            Shape::Object(_, children) => {
                for (_, child) in children {
                    self.set(*child, Leaf::Missing);
                }
            }
        }
    }
}
