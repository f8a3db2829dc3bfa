//! Quick settings chosen at checkout and the settings the worker resolves for each target.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::ids::{AudienceId, SettingsId};

/// Options the customer may set when connecting data to a profile. The marketplace sends values
/// loosely typed (`"true"` as well as `true`, ids as strings or numbers) and, on the legacy
/// feed, in camelCase; all of those are accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickSettings {
    /// Deliver into this existing audience instead of creating one.
    #[serde(
        default,
        alias = "audienceId",
        deserialize_with = "lenient_audience_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub audience_id: Option<AudienceId>,
    /// Name of the audience to create when none is given.
    #[serde(
        default,
        alias = "audienceName",
        deserialize_with = "lenient_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub audience_name: Option<String>,
    /// For connections: also deliver the dataset's files that existed before the connection.
    #[serde(
        default,
        alias = "historicalDataEnabled",
        deserialize_with = "lenient_bool",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub historical_data_enabled: bool,
}

fn lenient_audience_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AudienceId>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => AudienceId::parse(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(serde_json::Value::Number(n)) => AudienceId::parse(&n.to_string())
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid audience id: expected a string or number, got {other}"
        ))),
    }
}

fn lenient_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(serde_json::Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "invalid boolean {other:?}: expected true or false"
            ))),
        },
        Some(serde_json::Value::Number(n)) => Ok(n.as_i64() == Some(1)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid boolean: expected true or false, got {other}"
        ))),
    }
}

/// The audience resolved for one delivery target, remembered so later deliveries of the same
/// target reach the same audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The target.
    pub id: SettingsId,
    /// The audience its deliveries go to.
    pub audience_id: AudienceId,
    /// When the settings were first saved.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When they last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_settings_accept_loose_types_and_both_casings() {
        let snake: QuickSettings = serde_json::from_str(
            r#"{"audience_id": 123, "audience_name": " My audience ", "historical_data_enabled": "true"}"#,
        )
        .unwrap();
        assert_eq!(
            snake.audience_id.as_ref().map(AudienceId::as_str),
            Some("123")
        );
        assert_eq!(snake.audience_name.as_deref(), Some("My audience"));
        assert!(snake.historical_data_enabled);

        let camel: QuickSettings =
            serde_json::from_str(r#"{"audienceId": "123", "historicalDataEnabled": true}"#)
                .unwrap();
        assert_eq!(camel.audience_id, snake.audience_id);
        assert!(camel.historical_data_enabled);

        let empty: QuickSettings = serde_json::from_str(
            r#"{"audience_id": null, "audience_name": "", "historical_data_enabled": "false"}"#,
        )
        .unwrap();
        assert_eq!(empty, QuickSettings::default());
        assert_eq!(serde_json::from_str::<QuickSettings>("{}").unwrap(), empty);

        assert!(
            serde_json::from_str::<QuickSettings>(r#"{"historical_data_enabled": "maybe"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<QuickSettings>(r#"{"audience_id": "abc"}"#).is_err());
    }

    #[test]
    fn quick_settings_serialize_snake_case_without_empty_fields() {
        let qs = QuickSettings {
            audience_id: Some(AudienceId::parse("9").unwrap()),
            audience_name: None,
            historical_data_enabled: true,
        };
        assert_eq!(
            serde_json::to_string(&qs).unwrap(),
            r#"{"audience_id":"9","historical_data_enabled":true}"#
        );
    }
}
