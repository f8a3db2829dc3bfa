//! Stable names of the input fields whose rejections are counted.

use std::fmt;

macro_rules! fields {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// An input field (an attribute or a path inside one) of normalization.md. Its
        /// [`Field::as_str`] name is stable: operators see it in rejection counts.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field {
            $($(#[$doc])* #[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl Field {
            /// Every field, in declaration order.
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The stable name, e.g. `person_name.given_name`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }
        }
    };
}

fields! {
    /// Legacy records: the `data` attribute itself (when it is not an object).
    Data => "data",
    UniqueId => "unique_id",
    UniqueIdType => "unique_id.type",
    UniqueIdValue => "unique_id.value",
    HashedEmail => "hashed_email",
    HashedEmailType => "hashed_email.type",
    HashedEmailValue => "hashed_email.value",
    Sha256HashedEmail => "sha256_hashed_email",
    Sha256HashedEmailValue => "sha256_hashed_email.value",
    NormalizedEmail => "normalized_email",
    RawEmail => "raw_email",
    Sha256HashedPhone => "sha256_hashed_phone_number",
    Sha256HashedPhoneValue => "sha256_hashed_phone_number.value",
    E164Phone => "e164_phone_number",
    TelephoneNumber => "telephone_number",
    MobileId => "mobile_id_unique_identifier",
    MobileIdValue => "mobile_id_unique_identifier.value",
    AndroidAdId => "android_advertising_id",
    AndroidAdIdValue => "android_advertising_id.value",
    AppleIdfa => "apple_idfa",
    AppleIdfaValue => "apple_idfa.value",
    PersonName => "person_name",
    GivenName => "person_name.given_name",
    FamilyName => "person_name.family_name",
    Hl7Gender => "hl7_gender",
    Gender => "hl7_gender.gender",
    Birthdate => "birthdate",
    BirthYear => "birth_year",
    Country => "iso_3166_1_country",
    PostalAddress => "postal_address",
    Locality => "postal_address.address_locality",
    Region => "postal_address.address_region",
    PostalCode => "postal_address.postal_code",
}

/// Number of [`Field`]s.
pub(crate) const FIELD_COUNT: usize = Field::ALL.len();

impl Field {
    /// Position in [`Field::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Looks a field up by its stable name.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Field`]s (the fields one record rejected).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u64);

impl FieldSet {
    /// The empty set.
    pub const EMPTY: FieldSet = FieldSet(0);

    /// Adds a field.
    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field.index();
    }

    /// Whether the set holds `field`.
    pub fn contains(self, field: Field) -> bool {
        self.0 & (1 << field.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of fields in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The fields, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let index = bits.trailing_zeros() as usize;
            bits &= bits.wrapping_sub(1);
            Field::ALL.get(index).copied()
        })
    }
}

impl fmt::Debug for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Field::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        const { assert!(FIELD_COUNT <= 64) };
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Field::parse(f.as_str()), Some(*f));
        }
        let mut set = FieldSet::EMPTY;
        set.insert(Field::RawEmail);
        set.insert(Field::Data);
        set.insert(Field::RawEmail);
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Field::Data, Field::RawEmail]
        );
        assert_eq!(format!("{set:?}"), r#"{"data", "raw_email"}"#);
    }
}
