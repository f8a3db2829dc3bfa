//! Identifiers and small value types, validated on construction, with the serde forms the
//! marketplace and Facebook use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::InvalidValue;

/// Declares a newtype around a [`Uuid`] with `Display`, `FromStr` and transparent serde.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The wrapped uuid.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map($name)
                    .map_err(|_| InvalidValue::new($what, s, "expected a uuid"))
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                $name(value)
            }
        }
    };
}

uuid_id!(
    /// A marketplace profile (a Facebook login + ad account owned by a company).
    ProfileId,
    "profile id"
);
uuid_id!(
    /// A legacy marketplace subscription.
    SubscriptionId,
    "subscription id"
);
uuid_id!(
    /// The marketplace transaction batch a legacy delivery belongs to.
    TransactionBatchId,
    "transaction batch id"
);
uuid_id!(
    /// A marketplace connection: a dataset connected to a profile.
    ConnectionId,
    "connection id"
);
uuid_id!(
    /// One delivery job (one file of one command). Generated as uuid v7 so ids sort by creation.
    JobId,
    "job id"
);

impl JobId {
    /// A fresh, time-ordered job id.
    pub fn new_v7() -> Self {
        JobId(Uuid::now_v7())
    }

    /// The Facebook upload session id of this job's `index`-th session (0 for the first): a
    /// positive 63-bit number derived from the job id alone, so every attempt, retry and
    /// restart of the job continues the same session (a batch re-sent after a crash between
    /// Facebook's answer and the checkpoint lands on the same `batch_seq` of the same session
    /// instead of opening a second one). A new index is used only when a session is too old
    /// for Facebook to accept more batches.
    pub fn upload_session_id(&self, index: u32) -> u64 {
        let mut input = [0u8; 20];
        input[..16].copy_from_slice(self.0.as_bytes());
        input[16..].copy_from_slice(&index.to_be_bytes());
        let digest = crate::member::sha256(&input);
        let mut word = [0u8; 8];
        word.copy_from_slice(&digest[..8]);
        let id = u64::from_be_bytes(word) & (i64::MAX as u64);
        id.max(1)
    }
}

/// Declares a newtype around an integer with `Display`, `FromStr` and serde that accepts a
/// number or a string of digits.
macro_rules! int_id {
    ($(#[$meta:meta])* $name:ident, $inner:ty, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim()
                    .parse::<$inner>()
                    .map($name)
                    .map_err(|_| InvalidValue::new($what, s, "expected an integer"))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Int($inner),
                    Str(String),
                }
                match Raw::deserialize(deserializer)? {
                    Raw::Int(v) => Ok($name(v)),
                    Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
                }
            }
        }
    };
}

int_id!(
    /// A marketplace company (the customer).
    CompanyId,
    i64,
    "company id"
);
int_id!(
    /// A marketplace dataset.
    DatasetId,
    i64,
    "dataset id"
);
int_id!(
    /// Position in the marketplace's event feed. The worker's cursor is the last revision whose
    /// command was recorded.
    Revision,
    u64,
    "revision"
);

impl Revision {
    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

/// Declares a newtype around a non-empty string.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value` (trimmed, must be non-empty).
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                let trimmed = value.trim();
                if trimmed.is_empty() {
                    return Err(InvalidValue::new($what, &value, "must not be empty"));
                }
                Ok($name(trimmed.to_owned()))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A dataset snapshot (opaque marketplace identifier).
    SnapshotId,
    "snapshot id"
);
string_id!(
    /// A Facebook user id (app-scoped, numeric string).
    FacebookUserId,
    "facebook user id"
);
string_id!(
    /// A Facebook business id.
    BusinessId,
    "business id"
);

/// A delivered file's name: a legacy delivery file name or a dataset file path. Never empty and
/// never containing a NUL or a line break.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FileName(String);

impl FileName {
    /// Validates a file name.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        if value.trim().is_empty() {
            return Err(InvalidValue::new("file name", &value, "must not be empty"));
        }
        if value.contains(['\0', '\n', '\r']) {
            return Err(InvalidValue::new(
                "file name",
                &value,
                "must not contain control characters",
            ));
        }
        Ok(FileName(value))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name says the file is Parquet (`.parquet`, any case).
    pub fn is_parquet(&self) -> bool {
        self.0.to_ascii_lowercase().ends_with(".parquet")
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FileName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FileName::new(s)
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FileName::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A Facebook ad account id, canonical as `act_<digits>`. Parsing accepts `act_123` and `123`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdAccountId(String);

impl AdAccountId {
    /// Parses `act_<digits>` or `<digits>` (surrounding whitespace ignored).
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let trimmed = value.trim();
        let digits = trimmed.strip_prefix("act_").unwrap_or(trimmed);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(
                "ad account id",
                value,
                "expected act_<digits> or <digits>",
            ));
        }
        Ok(AdAccountId(format!("act_{digits}")))
    }

    /// The canonical `act_<digits>` form (also the Graph API node name).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The numeric part without the `act_` prefix (Facebook's `account_id` field).
    pub fn digits(&self) -> &str {
        &self.0[4..]
    }
}

impl fmt::Display for AdAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AdAccountId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AdAccountId::parse(s)
    }
}

impl Serialize for AdAccountId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AdAccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        let s = match Raw::deserialize(deserializer)? {
            Raw::Int(v) => v.to_string(),
            Raw::Str(s) => s,
        };
        AdAccountId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A Facebook Custom Audience id (digits). Accepts a JSON string or number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AudienceId(String);

impl AudienceId {
    /// Parses a string of 1–20 digits (surrounding whitespace ignored).
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let trimmed = value.trim();
        if trimmed.is_empty() || trimmed.len() > 20 || !trimmed.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidValue::new("audience id", value, "expected digits"));
        }
        Ok(AudienceId(trimmed.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AudienceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AudienceId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AudienceId::parse(s)
    }
}

impl Serialize for AudienceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AudienceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        let s = match Raw::deserialize(deserializer)? {
            Raw::Int(v) => v.to_string(),
            Raw::Str(s) => s,
        };
        AudienceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where one delivery target's resolved audience is remembered:
/// `profile_<profile>:subscription_<id>` or `profile_<profile>:connection_<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SettingsId {
    /// A legacy subscription delivered to a profile.
    Subscription {
        /// The profile delivered to.
        profile_id: ProfileId,
        /// The subscription.
        subscription_id: SubscriptionId,
    },
    /// A dataset connection delivered to a profile.
    Connection {
        /// The profile delivered to.
        profile_id: ProfileId,
        /// The connection.
        connection_id: ConnectionId,
    },
}

impl SettingsId {
    /// The profile this target delivers to.
    pub fn profile_id(&self) -> ProfileId {
        match self {
            SettingsId::Subscription { profile_id, .. }
            | SettingsId::Connection { profile_id, .. } => *profile_id,
        }
    }

    /// The default name of an audience created for this target.
    pub fn default_audience_name(&self) -> String {
        match self {
            SettingsId::Subscription {
                subscription_id, ..
            } => {
                format!("Subscription {subscription_id} Audience")
            }
            SettingsId::Connection { connection_id, .. } => {
                format!("Connection {connection_id} Audience")
            }
        }
    }
}

impl fmt::Display for SettingsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsId::Subscription {
                profile_id,
                subscription_id,
            } => write!(f, "profile_{profile_id}:subscription_{subscription_id}"),
            SettingsId::Connection {
                profile_id,
                connection_id,
            } => write!(f, "profile_{profile_id}:connection_{connection_id}"),
        }
    }
}

impl FromStr for SettingsId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidValue::new(
                "settings id",
                s,
                "expected profile_<uuid>:subscription_<uuid> or profile_<uuid>:connection_<uuid>",
            )
        };
        let (profile, target) = s.split_once(':').ok_or_else(invalid)?;
        let profile_id: ProfileId = profile
            .strip_prefix("profile_")
            .ok_or_else(invalid)?
            .parse()
            .map_err(|_| invalid())?;
        if let Some(id) = target.strip_prefix("subscription_") {
            Ok(SettingsId::Subscription {
                profile_id,
                subscription_id: id.parse().map_err(|_| invalid())?,
            })
        } else if let Some(id) = target.strip_prefix("connection_") {
            Ok(SettingsId::Connection {
                profile_id,
                connection_id: id.parse().map_err(|_| invalid())?,
            })
        } else {
            Err(invalid())
        }
    }
}

impl Serialize for SettingsId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SettingsId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_account_ids_are_canonical_with_act_prefix() {
        assert_eq!(AdAccountId::parse("123").unwrap().as_str(), "act_123");
        assert_eq!(AdAccountId::parse(" act_123 ").unwrap().as_str(), "act_123");
        assert_eq!(AdAccountId::parse("act_123").unwrap().digits(), "123");
        for bad in ["", "act_", "act_12a", "abc", "act_-1", "act_ 1"] {
            assert!(
                AdAccountId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        let from_number: AdAccountId = serde_json::from_str("42").unwrap();
        assert_eq!(from_number.as_str(), "act_42");
        let from_string: AdAccountId = serde_json::from_str("\"act_42\"").unwrap();
        assert_eq!(serde_json::to_string(&from_string).unwrap(), "\"act_42\"");
    }

    #[test]
    fn audience_ids_accept_strings_and_numbers() {
        let a: AudienceId = serde_json::from_str("\"23850000000000001\"").unwrap();
        let b: AudienceId = serde_json::from_str("23850000000000001").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"23850000000000001\"");
        assert!(serde_json::from_str::<AudienceId>("\"12x\"").is_err());
        assert!(serde_json::from_str::<AudienceId>("\"\"").is_err());
    }

    #[test]
    fn settings_ids_round_trip_in_both_forms() {
        let profile_id: ProfileId = "0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00".parse().unwrap();
        let subscription_id: SubscriptionId =
            "1e2d3c4b-5a69-4788-9aab-bccddeeff001".parse().unwrap();
        let connection_id: ConnectionId = "2e2d3c4b-5a69-4788-9aab-bccddeeff002".parse().unwrap();
        let sub = SettingsId::Subscription {
            profile_id,
            subscription_id,
        };
        let conn = SettingsId::Connection {
            profile_id,
            connection_id,
        };
        assert_eq!(
            sub.to_string(),
            "profile_0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00:subscription_1e2d3c4b-5a69-4788-9aab-bccddeeff001"
        );
        assert_eq!(
            conn.to_string(),
            "profile_0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00:connection_2e2d3c4b-5a69-4788-9aab-bccddeeff002"
        );
        for id in [sub, conn] {
            assert_eq!(id.to_string().parse::<SettingsId>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<SettingsId>(&json).unwrap(), id);
            assert_eq!(id.profile_id(), profile_id);
        }
        assert_eq!(
            sub.default_audience_name(),
            "Subscription 1e2d3c4b-5a69-4788-9aab-bccddeeff001 Audience"
        );
        for bad in [
            "",
            "profile_x:subscription_y",
            "profile_0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00",
            "profile_0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00:dataset_1e2d3c4b-5a69-4788-9aab-bccddeeff001",
        ] {
            assert!(
                bad.parse::<SettingsId>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn integer_ids_accept_numbers_and_digit_strings() {
        let a: CompanyId = serde_json::from_str("17").unwrap();
        let b: CompanyId = serde_json::from_str("\"17\"").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<Revision>("\"x\"").is_err());
        assert_eq!(Revision(4).next(), Revision(5));
    }

    #[test]
    fn file_names_reject_empty_and_control_characters() {
        assert!(FileName::new("part-0001.parquet").unwrap().is_parquet());
        assert!(!FileName::new("delivery.jsonl").unwrap().is_parquet());
        assert!(FileName::new("  ").is_err());
        assert!(FileName::new("a\nb").is_err());
    }
}
