//! [`SettingsStore`]: the audience of each delivery target, created under a claim.

use std::time::Duration;

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{AudienceId, Settings, SettingsId, WorkerId};
use facebook_connector_core::ports::{SettingsClaim, SettingsStore};
use time::OffsetDateTime;

use super::rows::{get, opt_ts};
use super::store::SqlStore;
use super::{DbRow, SETTINGS_SELECT_FOR_UPDATE, Ts, begin_write, from_ts, ts};
use crate::codec::add;
use crate::error::{StoreError, StoreResult};

fn settings_from_row(id: SettingsId, row: &DbRow) -> StoreResult<Option<Settings>> {
    let audience_id: Option<String> = get(row, "audience_id")?;
    let Some(audience_id) = audience_id else {
        return Ok(None);
    };
    let created_at: Option<Ts> = get(row, "created_at")?;
    let updated_at = from_ts(get(row, "updated_at")?)?;
    Ok(Some(Settings {
        id,
        audience_id: AudienceId::parse(&audience_id)
            .map_err(|e| StoreError::corrupt("audience id")(Box::new(e)))?,
        created_at: opt_ts(created_at)?.unwrap_or(updated_at),
        updated_at,
    }))
}

#[async_trait]
impl SettingsStore for SqlStore {
    async fn get_settings(&self, id: SettingsId) -> Result<Option<Settings>> {
        let row =
            sqlx::query("SELECT audience_id, created_at, updated_at FROM settings WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("get settings"))?;
        match row {
            Some(row) => Ok(settings_from_row(id, &row)?),
            None => Ok(None),
        }
    }

    async fn claim_settings(
        &self,
        id: SettingsId,
        owner: &WorkerId,
        ttl: Duration,
        replacing: Option<AudienceId>,
        now: OffsetDateTime,
    ) -> Result<SettingsClaim> {
        let until = add(now, ttl)?;
        let key = id.to_string();
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin claim settings"))?;
        // a new row is the claim; on PostgreSQL a concurrent insert of the same id waits for
        // the other transaction and then does nothing, so only one worker gets here first
        let inserted = sqlx::query(
            "INSERT INTO settings (id, profile_id, claim_owner, claim_until, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(id.profile_id().0)
        .bind(owner.0.as_str())
        .bind(ts(until))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("claim settings"))?
        .rows_affected();
        if inserted == 1 {
            tx.commit()
                .await
                .map_err(StoreError::query("commit claim settings"))?;
            return Ok(SettingsClaim::Claimed);
        }
        let row = sqlx::query(SETTINGS_SELECT_FOR_UPDATE)
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query("read settings claim"))?;
        // settings whose audience vanished from Facebook count as absent for the caller that
        // replaces it: the claim below decides who creates the replacement
        if let Some(existing) = settings_from_row(id, &row)?
            && replacing.as_ref() != Some(&existing.audience_id)
        {
            tx.rollback()
                .await
                .map_err(StoreError::query("end claim settings"))?;
            return Ok(SettingsClaim::Existing(existing));
        }
        let holder: Option<String> = get(&row, "claim_owner")?;
        let held_until = opt_ts(get(&row, "claim_until")?)?;
        match (holder, held_until) {
            (Some(holder), Some(held_until)) if holder != owner.0 && held_until > now => {
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end claim settings"))?;
                Ok(SettingsClaim::HeldByOther { until: held_until })
            }
            _ => {
                sqlx::query(
                    "UPDATE settings SET claim_owner = $2, claim_until = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(key.as_str())
                .bind(owner.0.as_str())
                .bind(ts(until))
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("claim settings"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("commit claim settings"))?;
                Ok(SettingsClaim::Claimed)
            }
        }
    }

    async fn save_settings(
        &self,
        id: SettingsId,
        audience_id: &AudienceId,
        owner: &WorkerId,
        now: OffsetDateTime,
    ) -> Result<Settings> {
        let key = id.to_string();
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin save settings"))?;
        let row = sqlx::query(SETTINGS_SELECT_FOR_UPDATE)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("read settings claim"))?;
        if let Some(row) = row {
            let holder: Option<String> = get(&row, "claim_owner")?;
            let held_until = opt_ts(get(&row, "claim_until")?)?;
            if let (Some(holder), Some(held_until)) = (holder, held_until)
                && holder != owner.0
                && held_until > now
            {
                return Err(StoreError::Busy {
                    what: format!("settings {id} (another worker is creating its audience)"),
                    retry_after: (held_until - now).try_into().ok(),
                }
                .into());
            }
        }
        let row = sqlx::query(
            "INSERT INTO settings (id, profile_id, audience_id, claim_owner, claim_until, \
             created_at, updated_at) VALUES ($1, $2, $3, NULL, NULL, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET audience_id = excluded.audience_id, \
             claim_owner = NULL, claim_until = NULL, \
             created_at = COALESCE(settings.created_at, excluded.created_at), \
             updated_at = excluded.updated_at \
             RETURNING audience_id, created_at, updated_at",
        )
        .bind(key.as_str())
        .bind(id.profile_id().0)
        .bind(audience_id.as_str())
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query("save settings"))?;
        let settings = settings_from_row(id, &row)?.ok_or_else(|| {
            StoreError::corrupt("settings")("saved settings have no audience".into())
        })?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit save settings"))?;
        Ok(settings)
    }

    async fn release_settings(&self, id: SettingsId, owner: &WorkerId) -> Result<()> {
        sqlx::query(
            "UPDATE settings SET claim_owner = NULL, claim_until = NULL \
             WHERE id = $1 AND claim_owner = $2",
        )
        .bind(id.to_string())
        .bind(owner.0.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("release settings"))?;
        Ok(())
    }
}
