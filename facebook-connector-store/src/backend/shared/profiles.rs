//! [`ProfileStore`]: profiles, their tokens and delivery state.

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, Business, BusinessId, CompanyId, DeliveryState,
    EncryptedToken, FacebookUser, FacebookUserId, ProfileId, StoredProfile, TokenMeta,
};
use facebook_connector_core::ports::ProfileStore;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{get, opt_ts};
use super::store::SqlStore;
use super::{DbRow, begin_write, from_ts, ts};
use crate::codec::PROFILE_ARCHIVED;
use crate::error::{StoreError, StoreResult};

macro_rules! profile_columns {
    () => {
        "id, company_id, ad_account_id, ad_account_name, business_id, business_name, \
         custom_audience_tos_accepted, audience_id, audience_name, token, token_issued_at, \
         facebook_user_id, facebook_user_name, delivery_state, reauth_reason, reauth_since, \
         archived_at, created_at, updated_at, token_expires_at, token_data_access_expires_at, \
         token_scopes"
    };
}

fn profile_from_row(row: &DbRow) -> StoreResult<StoredProfile> {
    let invalid = |what: &'static str| {
        move |e: facebook_connector_core::InvalidValue| StoreError::corrupt(what)(Box::new(e))
    };
    let ad_account_id: String = get(row, "ad_account_id")?;
    let business_id: Option<String> = get(row, "business_id")?;
    let business_name: Option<String> = get(row, "business_name")?;
    let business = match business_id {
        Some(id) => Some(Business {
            id: BusinessId::new(id).map_err(invalid("business id"))?,
            name: business_name.unwrap_or_default(),
        }),
        None => None,
    };
    let audience_id: Option<String> = get(row, "audience_id")?;
    let audience_name: Option<String> = get(row, "audience_name")?;
    let audience = match audience_id {
        Some(id) => Some(Audience {
            id: AudienceId::parse(&id).map_err(invalid("audience id"))?,
            name: audience_name.unwrap_or_default(),
        }),
        None => None,
    };
    let state: String = get(row, "delivery_state")?;
    let delivery_state = match state.as_str() {
        "ok" => DeliveryState::Ok,
        "needs_reauth" => DeliveryState::NeedsReauth {
            reason: get::<Option<String>>(row, "reauth_reason")?.unwrap_or_default(),
            since: opt_ts(get(row, "reauth_since")?)?.ok_or_else(|| {
                StoreError::corrupt("delivery state")("needs_reauth without a time".into())
            })?,
        },
        other => {
            return Err(StoreError::corrupt("delivery state")(
                format!("unknown delivery state {other:?}").into(),
            ));
        }
    };
    let user_id: String = get(row, "facebook_user_id")?;
    Ok(StoredProfile {
        id: ProfileId(get::<Uuid>(row, "id")?),
        company_id: CompanyId(get(row, "company_id")?),
        ad_account: AdAccount {
            id: AdAccountId::parse(&ad_account_id).map_err(invalid("ad account id"))?,
            name: get(row, "ad_account_name")?,
            business,
            user_accepted_custom_audience_tos: get(row, "custom_audience_tos_accepted")?,
        },
        audience,
        token: EncryptedToken(get(row, "token")?),
        token_meta: TokenMeta {
            issued_at: opt_ts(get(row, "token_issued_at")?)?,
            expires_at: opt_ts(get(row, "token_expires_at")?)?,
            data_access_expires_at: opt_ts(get(row, "token_data_access_expires_at")?)?,
            scopes: get::<Json<Vec<String>>>(row, "token_scopes")?.0,
        },
        facebook_user: FacebookUser {
            id: FacebookUserId::new(user_id).map_err(invalid("facebook user id"))?,
            name: get(row, "facebook_user_name")?,
        },
        delivery_state,
        archived_at: opt_ts(get(row, "archived_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
    })
}

#[async_trait]
impl ProfileStore for SqlStore {
    async fn insert_profile(&self, profile: &StoredProfile) -> Result<()> {
        let (state, reason, since) = match &profile.delivery_state {
            DeliveryState::Ok => ("ok", None, None),
            DeliveryState::NeedsReauth { reason, since } => {
                ("needs_reauth", Some(reason.as_str()), Some(ts(*since)))
            }
        };
        sqlx::query(concat!(
            "INSERT INTO profiles (",
            profile_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22)"
        ))
        .bind(profile.id.0)
        .bind(profile.company_id.0)
        .bind(profile.ad_account.id.as_str())
        .bind(profile.ad_account.name.as_str())
        .bind(profile.ad_account.business.as_ref().map(|b| b.id.as_str()))
        .bind(
            profile
                .ad_account
                .business
                .as_ref()
                .map(|b| b.name.as_str()),
        )
        .bind(profile.ad_account.user_accepted_custom_audience_tos)
        .bind(profile.audience.as_ref().map(|a| a.id.as_str()))
        .bind(profile.audience.as_ref().map(|a| a.name.as_str()))
        .bind(profile.token.0.as_str())
        .bind(profile.token_meta.issued_at.map(ts))
        .bind(profile.facebook_user.id.as_str())
        .bind(profile.facebook_user.name.as_str())
        .bind(state)
        .bind(reason)
        .bind(since)
        .bind(profile.archived_at.map(ts))
        .bind(ts(profile.created_at))
        .bind(ts(profile.updated_at))
        .bind(profile.token_meta.expires_at.map(ts))
        .bind(profile.token_meta.data_access_expires_at.map(ts))
        .bind(Json(&profile.token_meta.scopes))
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("insert profile", || {
            format!("profile {}", profile.id)
        }))?;
        Ok(())
    }

    async fn get_profile(&self, id: ProfileId) -> Result<Option<StoredProfile>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("get profile"))?;
        Ok(row.as_ref().map(profile_from_row).transpose()?)
    }

    async fn list_profiles(&self, company_id: CompanyId) -> Result<Vec<StoredProfile>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE company_id = $1 ORDER BY created_at, id"
        ))
        .bind(company_id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list profiles"))?;
        Ok(rows
            .iter()
            .map(profile_from_row)
            .collect::<StoreResult<_>>()?)
    }

    async fn update_ad_account(&self, id: ProfileId, ad_account: &AdAccount) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE profiles SET ad_account_id = $2, ad_account_name = $3, business_id = $4, \
             business_name = $5, custom_audience_tos_accepted = $6 WHERE id = $1",
        )
        .bind(id.0)
        .bind(ad_account.id.as_str())
        .bind(ad_account.name.as_str())
        .bind(ad_account.business.as_ref().map(|b| b.id.as_str()))
        .bind(ad_account.business.as_ref().map(|b| b.name.as_str()))
        .bind(ad_account.user_accepted_custom_audience_tos)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("update ad account"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        Ok(())
    }

    async fn set_audience(&self, id: ProfileId, audience: Option<Audience>) -> Result<()> {
        let updated =
            sqlx::query("UPDATE profiles SET audience_id = $2, audience_name = $3 WHERE id = $1")
                .bind(id.0)
                .bind(audience.as_ref().map(|a| a.id.as_str()))
                .bind(audience.as_ref().map(|a| a.name.as_str()))
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("set audience"))?
                .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        Ok(())
    }

    async fn mark_needs_reauth(
        &self,
        id: ProfileId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin mark needs reauth"))?;
        // the first reason and time are kept when the profile already needs re-authorisation
        let updated = sqlx::query(
            "UPDATE profiles SET \
             reauth_reason = CASE WHEN delivery_state = 'needs_reauth' THEN reauth_reason ELSE $2 END, \
             reauth_since = CASE WHEN delivery_state = 'needs_reauth' THEN reauth_since ELSE $3 END, \
             delivery_state = 'needs_reauth', updated_at = $3 WHERE id = $1",
        )
        .bind(id.0)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("mark needs reauth"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        // queued jobs, and running ones whose holder is gone (lease expired): those would
        // otherwise stay `running` until the profile is re-authorised
        let paused = sqlx::query(
            "UPDATE jobs SET status = 'paused', last_error = $2, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $3 WHERE profile_id = $1 \
             AND (status = 'queued' OR (status = 'running' AND lease_expires_at <= $3))",
        )
        .bind(id.0)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("pause profile jobs"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit mark needs reauth"))?;
        Ok(paused)
    }

    async fn reauthorize(
        &self,
        id: ProfileId,
        token: &EncryptedToken,
        token_meta: &TokenMeta,
        user: &FacebookUser,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin reauthorize"))?;
        let updated = sqlx::query(
            "UPDATE profiles SET token = $2, token_issued_at = $3, token_expires_at = $4, \
             token_data_access_expires_at = $5, token_scopes = $6, facebook_user_id = $7, \
             facebook_user_name = $8, delivery_state = 'ok', reauth_reason = NULL, \
             reauth_since = NULL, updated_at = $9 WHERE id = $1",
        )
        .bind(id.0)
        .bind(token.0.as_str())
        .bind(token_meta.issued_at.map(ts))
        .bind(token_meta.expires_at.map(ts))
        .bind(token_meta.data_access_expires_at.map(ts))
        .bind(Json(&token_meta.scopes))
        .bind(user.id.as_str())
        .bind(user.name.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("reauthorize profile"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        let resumed = sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $2, due_at = $2, updated_at = $2 \
             WHERE profile_id = $1 AND status = 'paused'",
        )
        .bind(id.0)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("resume profile jobs"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit reauthorize"))?;
        Ok(resumed)
    }

    async fn archive_profile(&self, id: ProfileId, now: OffsetDateTime) -> Result<bool> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin archive profile"))?;
        let updated = sqlx::query(
            "UPDATE profiles SET archived_at = $2, updated_at = $2 \
             WHERE id = $1 AND archived_at IS NULL",
        )
        .bind(id.0)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("archive profile"))?
        .rows_affected();
        if updated > 0 {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', last_error = $2, lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = $3 \
                 WHERE profile_id = $1 AND status IN ('queued', 'paused')",
            )
            .bind(id.0)
            .bind(PROFILE_ARCHIVED)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("fail archived profile jobs"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit archive profile"))?;
        Ok(updated > 0)
    }
}

fn profile_not_found(id: ProfileId) -> StoreError {
    StoreError::NotFound {
        what: format!("profile {id}"),
    }
}
