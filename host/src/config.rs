//! Flags both binaries take (operations.md, "Configuration"): each with the environment
//! variable of the original connector as its fallback. Secrets are read straight into
//! [`SecretString`]s, are never shown by `--help` (no defaults, `hide_env_values`) and are
//! redacted in `Debug`.

use std::fmt;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

use crate::logging::LogFormat;

/// The embedded default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://facebook-connector.db?mode=rwc";
/// The marketplace API.
pub const DEFAULT_NARRATIVE_API_BASE_URI: &str = "https://api.narrative.io";
/// The Graph API host.
pub const DEFAULT_FACEBOOK_GRAPH_URL: &str = "https://graph.facebook.com";
/// The Graph API version.
pub const DEFAULT_FACEBOOK_API_VERSION: &str = "v25.0";

/// Where the database is (every command that touches it).
#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://user@host/db` (many workers share one) or
    /// `sqlite://path?mode=rwc` (embedded, one process)
    #[arg(long, env = "DB_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

impl fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

/// The configuration `serve` and `run` share: database, token keys, marketplace and Facebook
/// app. Required values are `Option`s here and checked with [`require`] by the command that
/// needs them, so a missing one is a one-line error naming the flag and the variable.
#[derive(Clone, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Token encryption keys, newest first: `<key id>:<base64 of 32 bytes>`, separated by
    /// commas (required by `serve` and `run`)
    #[arg(long, env = "TOKEN_ENCRYPTION_KEYS", hide_env_values = true, value_parser = secret)]
    pub token_keys: Option<SecretString>,

    /// Base URL of the Narrative marketplace API
    #[arg(long, env = "NARRATIVE_API_BASE_URI", default_value = DEFAULT_NARRATIVE_API_BASE_URI)]
    pub narrative_api_base_uri: Url,

    /// The Facebook app's id (required by `serve` and `run`)
    #[arg(long, env = "FACEBOOK_APP_ID")]
    pub facebook_app_id: Option<String>,

    /// The Facebook app's secret (required by `serve` and `run`)
    #[arg(long, env = "FACEBOOK_APP_SECRET", hide_env_values = true, value_parser = secret)]
    pub facebook_app_secret: Option<SecretString>,

    /// Base URL of the Graph API, without the version
    #[arg(long, env = "FACEBOOK_GRAPH_URL", default_value = DEFAULT_FACEBOOK_GRAPH_URL)]
    pub facebook_graph_url: Url,

    /// Graph API version
    #[arg(long, env = "FACEBOOK_API_VERSION", default_value = DEFAULT_FACEBOOK_API_VERSION)]
    pub facebook_api_version: String,
}

impl fmt::Debug for ServiceArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |present: bool| if present { "[redacted]" } else { "[not set]" };
        f.debug_struct("ServiceArgs")
            .field("database", &self.database)
            .field("token_keys", &set(self.token_keys.is_some()))
            .field(
                "narrative_api_base_uri",
                &redact_url(self.narrative_api_base_uri.as_str()),
            )
            .field("facebook_app_id", &self.facebook_app_id)
            .field(
                "facebook_app_secret",
                &set(self.facebook_app_secret.is_some()),
            )
            .field(
                "facebook_graph_url",
                &redact_url(self.facebook_graph_url.as_str()),
            )
            .field("facebook_api_version", &self.facebook_api_version)
            .finish()
    }
}

/// Logging flags, global to every command of both binaries.
#[derive(Clone, Copy, Debug, Args)]
pub struct LogArgs {
    /// Log format: `text` (the default on a terminal) or `json` (the default otherwise)
    #[arg(long, env = "LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
}

/// A required value that was given neither as a flag nor in the environment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("missing {flag} (environment {env}): required by `{command}`")]
pub struct MissingValue {
    /// The flag, e.g. `--token-keys`.
    pub flag: &'static str,
    /// The environment variable, e.g. `TOKEN_ENCRYPTION_KEYS`.
    pub env: &'static str,
    /// The command that needs it, e.g. `run`.
    pub command: &'static str,
}

/// The value of a required option, or the one-line error that names its flag and variable.
pub fn require<T>(
    value: Option<T>,
    flag: &'static str,
    env: &'static str,
    command: &'static str,
) -> Result<T, MissingValue> {
    value.ok_or(MissingValue { flag, env, command })
}

/// Reads a secret straight into a [`SecretString`]; an empty value counts as missing.
pub fn secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(SecretString::from(value.to_owned()))
}

/// Parses a humantime duration (`200ms`, `5s`, `2m`, `1h 30m`); zero is refused.
pub fn duration(value: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(value.trim())
        .map_err(|e| format!("{e} (write durations as 200ms, 5s or 2m)"))?;
    if parsed.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(parsed)
}

/// A URL with any password replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // cannot fail for URLs that have a password (they have an authority)
            let _ = parsed.set_password(Some("[redacted]"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => match url.split_once('@') {
            Some((_, rest)) => format!("[redacted]@{rest}"),
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    #[test]
    fn missing_values_are_one_line_and_name_flag_and_variable() {
        let err = require::<String>(None, "--token-keys", "TOKEN_ENCRYPTION_KEYS", "run")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "missing --token-keys (environment TOKEN_ENCRYPTION_KEYS): required by `run`"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn defaults_are_the_spec_s_and_secrets_stay_out_of_debug() {
        let cli = Cli::try_parse_from([
            "x",
            "--token-keys",
            "k1:c2VjcmV0LWtleS1tYXRlcmlhbA==",
            "--facebook-app-secret",
            "app-secret-value",
            "--database-url",
            "postgres://u:db-password@h/db",
        ])
        .map_err(|e| e.to_string());
        let cli = match cli {
            Ok(cli) => cli,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            cli.service.narrative_api_base_uri.as_str(),
            "https://api.narrative.io/"
        );
        assert_eq!(cli.service.facebook_api_version, "v25.0");
        let debug = format!("{cli:?}");
        for secret in ["c2VjcmV0", "app-secret-value", "db-password"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn durations_are_humantime() {
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("0s").is_err());
        assert!(duration("five").is_err());
    }
}
