//! Settings resolution (behaviour.md, "Worker pipeline" 2): which audience a delivery target's
//! files go to, decided by the first job of the target and remembered in its settings.
//!
//! 1. Stored settings: their audience, if it still exists on Facebook.
//! 2. Otherwise the profile's own audience, if it has one (it must still exist).
//! 3. Otherwise the quick settings' `audience_id` (it must exist, else the file fails).
//! 4. Otherwise a new customer-file Custom Audience in the profile's ad account, named from
//!    the quick settings' `audience_name` or `Subscription <id> Audience` /
//!    `Connection <id> Audience`, created by the one worker that holds the target's settings
//!    claim ([`SettingsStore::claim_settings`](crate::ports::SettingsStore::claim_settings)):
//!    any number of workers create exactly one audience per settings id.

use std::time::Duration;

use secrecy::SecretString;

use crate::domain::{
    AudienceId, DeliveryEvent, Job, QuickSettings, SettingsId, StoredProfile, WorkerId,
};
use crate::error::{Error, Result};
use crate::ports::SettingsClaim;

use super::Inner;

/// The longest description Facebook accepts.
const MAX_DESCRIPTION_CHARS: usize = 100;

/// The audience the job's file goes to.
pub(crate) async fn resolve(
    engine: &Inner,
    job: &Job,
    profile: &StoredProfile,
    token: &SecretString,
) -> Result<AudienceId> {
    let ports = &engine.ports;
    let mut vanished: Option<AudienceId> = None;
    if let Some(settings) = ports.settings.get_settings(job.settings_id).await? {
        if exists(engine, token, &settings.audience_id).await? {
            return Ok(settings.audience_id);
        }
        tracing::warn!(
            settings_id = %job.settings_id,
            audience_id = %settings.audience_id,
            "the target's audience no longer exists on facebook: resolving it again"
        );
        vanished = Some(settings.audience_id);
    }
    if let Some(audience) = &profile.audience {
        if exists(engine, token, &audience.id).await? {
            return Ok(audience.id.clone());
        }
        return Err(Error::Rejected {
            reason: format!(
                "the profile's audience {} no longer exists on facebook or cannot be used with the profile's token: choose another audience for the profile",
                audience.id
            ),
            source: None,
        });
    }
    let quick = quick_settings(engine, job).await?;
    if let Some(id) = &quick.audience_id {
        if exists(engine, token, id).await? {
            return Ok(id.clone());
        }
        return Err(Error::Rejected {
            reason: format!(
                "audience {id} named in the quick settings (audience_id) does not exist in ad account {} or cannot be used with the profile's token",
                profile.ad_account.id
            ),
            source: None,
        });
    }
    create(engine, job, profile, token, &quick, vanished).await
}

async fn exists(engine: &Inner, token: &SecretString, id: &AudienceId) -> Result<bool> {
    let found = engine
        .ports
        .audiences
        .find_audiences(token, std::slice::from_ref(id))
        .await?;
    Ok(found.iter().any(|a| &a.id == id))
}

/// The quick settings chosen for the job's target: the legacy event's own, or its
/// connection's (looked up again: they are not stored with the command).
async fn quick_settings(engine: &Inner, job: &Job) -> Result<QuickSettings> {
    match job.settings_id {
        SettingsId::Subscription { .. } => {
            let command = engine.ports.commands.get_command(job.revision).await?;
            Ok(match command.map(|c| c.event) {
                Some(DeliveryEvent::SubscriptionDelivery { quick_settings, .. }) => quick_settings,
                _ => QuickSettings::default(),
            })
        }
        SettingsId::Connection { connection_id, .. } => {
            let connection = engine.ports.connections.connection(connection_id).await?;
            Ok(connection.map(|c| c.quick_settings).unwrap_or_default())
        }
    }
}

async fn create(
    engine: &Inner,
    job: &Job,
    profile: &StoredProfile,
    token: &SecretString,
    quick: &QuickSettings,
    vanished: Option<AudienceId>,
) -> Result<AudienceId> {
    let ports = &engine.ports;
    let id = job.settings_id;
    // the claim is the job's, not the worker's: two jobs of one target on one worker must not
    // both hold it
    let owner = &WorkerId(format!("{}/{}", engine.config.worker_id, job.id));
    // the holder of a live claim needs one Graph call to create the audience: the files of
    // a new target that were claimed together wait here for it (asking the store, never
    // Facebook) rather than all handing their slots back for a recheck seconds later; a
    // holder that gave up releases the claim, and the next look takes it over
    let waited_until = tokio::time::Instant::now() + HOLDER_WAIT;
    loop {
        let now = ports.clock.now();
        let claim = ports
            .settings
            .claim_settings(
                id,
                owner,
                engine.config.settings_claim_ttl,
                vanished.clone(),
                now,
            )
            .await?;
        match claim {
            SettingsClaim::HeldByOther { until } if tokio::time::Instant::now() >= waited_until => {
                return Err(Error::Busy {
                    what: format!("creating the audience of {id} (another worker)"),
                    retry_after: Some((until - now).try_into().unwrap_or_default()),
                });
            }
            SettingsClaim::HeldByOther { .. } => tokio::time::sleep(HOLDER_POLL).await,
            SettingsClaim::Existing(settings) => return Ok(settings.audience_id),
            SettingsClaim::Claimed => break,
        }
    }
    let name = quick
        .audience_name
        .clone()
        .unwrap_or_else(|| id.default_audience_name());
    let description = description(id);
    let created = ports
        .audiences
        .create_audience(token, &profile.ad_account.id, &name, &description)
        .await;
    match created {
        Ok(audience) => {
            let saved = ports
                .settings
                .save_settings(id, &audience.id, owner, ports.clock.now())
                .await?;
            tracing::info!(
                settings_id = %id,
                audience_id = %saved.audience_id,
                ad_account_id = %profile.ad_account.id,
                "created the target's custom audience"
            );
            Ok(saved.audience_id)
        }
        Err(error) => {
            if let Err(release) = ports.settings.release_settings(id, owner).await {
                // the claim runs out by itself
                tracing::warn!(
                    settings_id = %id,
                    error = %crate::error::display_chain(&release),
                    "cannot release the settings claim"
                );
            }
            Err(error)
        }
    }
}

/// How long a job waits in place for another job's audience creation, and how often it
/// looks again.
const HOLDER_WAIT: Duration = Duration::from_secs(5);
const HOLDER_POLL: Duration = Duration::from_millis(100);

/// "Audience delivered by Narrative (…)": at most 100 characters.
fn description(id: SettingsId) -> String {
    let text = format!("Delivered from the Narrative data marketplace ({id})");
    text.chars().take(MAX_DESCRIPTION_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_facebook_s_limit() {
        let id: SettingsId =
            "profile_2e2d3c4b-5a69-4788-9aab-bccddeeff001:connection_2e2d3c4b-5a69-4788-9aab-bccddeeff002"
                .parse()
                .unwrap();
        assert!(description(id).chars().count() <= MAX_DESCRIPTION_CHARS);
    }
}
