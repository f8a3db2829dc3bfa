//! [`ProfileService`]: the customer flow over the ports.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::domain::{
    AdAccount, AdAccountId, DeliveryState, FacebookUser, FacebookUserId, ProfileId, ProfileStatus,
    StoredProfile, TokenInfo, TokenMeta,
};
use crate::error::{Error, display_chain};
use crate::ports::{
    Clock, FacebookAccounts, MarketplaceProfile, ProfileDirectory, ProfileStore, ProfileTransition,
    TokenCipher,
};

use super::error::{ProfileError, Upstream};
use super::model::{Caller, Disconnected, NewProfile, ProfileView, Reauthorized, TokenMetadata};

/// Longest profile name accepted.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest profile description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// The ports the profile operations use.
#[derive(Clone)]
pub struct ProfilePorts {
    /// The marketplace, called with the customer's bearer token.
    pub marketplace: Arc<dyn ProfileDirectory>,
    /// Facebook token and ad account calls.
    pub facebook: Arc<dyn FacebookAccounts>,
    /// The connector's profile rows.
    pub store: Arc<dyn ProfileStore>,
    /// Token encryption at rest.
    pub cipher: Arc<dyn TokenCipher>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

/// The profile operations of the customer flow (behaviour.md, "Customer flow" and "HTTP API").
/// The HTTP API calls these one to one; the worker's `demo` and other hosts call the same.
/// Cheap to clone.
///
/// **Atomicity of creation.** The marketplace profile is created only after every Facebook
/// check passed. If a step after it fails (encrypting or storing the row), the marketplace
/// profile is archived again (compensation) and the caller gets the error: nothing half-made
/// is left active, and a retry creates a new profile. A compensation that fails too is logged
/// as an error with the profile id.
#[derive(Clone)]
pub struct ProfileService {
    ports: Arc<ProfilePorts>,
}

impl std::fmt::Debug for ProfileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileService").finish_non_exhaustive()
    }
}

/// A token that passed the checks, exchanged for a long-lived one.
struct CheckedToken {
    token: SecretString,
    meta: TokenMeta,
    user: FacebookUser,
}

fn invalid_token() -> ProfileError {
    ProfileError::InvalidToken {
        reason: "facebook says it is expired, revoked or not issued for this app: log in to facebook again".to_owned(),
    }
}

fn unreachable_ad_account(id: &AdAccountId) -> ProfileError {
    ProfileError::AdAccount {
        ad_account: id.to_string(),
        reason: "it cannot be reached with this facebook login: choose one of the ad accounts the login can use, or ask the ad account's admin to give this user access".to_owned(),
    }
}

impl ProfileService {
    /// The service over these ports.
    pub fn new(ports: ProfilePorts) -> ProfileService {
        ProfileService {
            ports: Arc::new(ports),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    /// Resolves the customer behind a marketplace bearer token (company and installation,
    /// asked of the marketplace at once). [`ProfileError::Unauthorized`] when the marketplace
    /// refuses the token, [`ProfileError::Forbidden`] on its 403.
    pub async fn caller(&self, token: SecretString) -> Result<Caller, ProfileError> {
        let market = &self.ports.marketplace;
        let (company, installation) =
            futures::try_join!(market.company(&token), market.installation(&token))
                .map_err(ProfileError::marketplace)?;
        Ok(Caller {
            token,
            company,
            installation,
        })
    }

    /// What a Facebook user token is (`POST /tokens/metadata`): validity, scopes, expiry, the
    /// user, and the ad accounts it can use when it carries `ads_management`. An invalid or
    /// unknown token is an answer (`is_valid: false`, no ad accounts), not an error.
    pub async fn token_metadata(
        &self,
        token: &SecretString,
    ) -> Result<TokenMetadata, ProfileError> {
        let fb = &self.ports.facebook;
        let not_valid = |info: Option<TokenInfo>| TokenMetadata {
            info: info.unwrap_or(TokenInfo {
                is_valid: false,
                scopes: Vec::new(),
                issued_at: None,
                expires_at: None,
                data_access_expires_at: None,
                user_id: None,
            }),
            user: None,
            expires_in_days: None,
            ad_accounts: Vec::new(),
        };
        let info = match fb.token_info(token).await {
            Ok(info) => info,
            Err(Error::InvalidToken { .. }) => return Ok(not_valid(None)),
            Err(e) => return Err(ProfileError::facebook(e)),
        };
        if !info.is_valid {
            return Ok(not_valid(Some(TokenInfo {
                is_valid: false,
                ..info
            })));
        }
        let user = match fb.me(token).await {
            Ok(user) => user,
            Err(Error::InvalidToken { .. }) => {
                return Ok(not_valid(Some(TokenInfo {
                    is_valid: false,
                    ..info
                })));
            }
            Err(e) => return Err(ProfileError::facebook(e)),
        };
        let ad_accounts = if info.scopes.iter().any(|s| s == "ads_management") {
            fb.ad_accounts(token)
                .await
                .map_err(ProfileError::facebook)?
        } else {
            Vec::new()
        };
        let expires_in_days = TokenMeta::from_info(&info).expires_in_days(self.now());
        Ok(TokenMetadata {
            info,
            user: Some(user),
            expires_in_days,
            ad_accounts,
        })
    }

    /// The caller's profiles (`GET /profiles`), oldest first: every stored profile of the
    /// caller's company that the caller's installation lists, archived ones included.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ProfileView>, ProfileError> {
        let listed = async {
            self.ports
                .marketplace
                .list_profiles(&caller.token, &caller.installation)
                .await
                .map_err(ProfileError::marketplace)
        };
        let stored = async {
            self.ports
                .store
                .list_profiles(caller.company)
                .await
                .map_err(ProfileError::internal("listing profiles"))
        };
        let (listed, stored) = futures::try_join!(listed, stored)?;
        let mut by_id: HashMap<ProfileId, MarketplaceProfile> =
            listed.into_iter().map(|p| (p.id, p)).collect();
        let now = self.now();
        Ok(stored
            .iter()
            .filter_map(|s| {
                let m = by_id.remove(&s.id)?;
                Some(ProfileView::join(s, m.name, m.description, m.status, now))
            })
            .collect())
    }

    /// One of the caller's profiles (`GET /profiles/{id}`). Another company's profile is
    /// [`ProfileError::NotFound`], exactly like a missing one.
    pub async fn get(&self, caller: &Caller, id: ProfileId) -> Result<ProfileView, ProfileError> {
        let stored = self.owned(caller, id).await?;
        let listed = self.marketplace_profile(caller, id).await?;
        Ok(self.view(&stored, listed))
    }

    /// Creates a profile (`POST /profiles`), exactly as the customer flow: the token is valid
    /// with both scopes, is exchanged for a long-lived one, the ad account is reachable, has a
    /// business and accepted Custom Audience terms; then the marketplace profile is created
    /// (disabled) and the row stored with the token encrypted. See the type's docs for what
    /// happens when a step after the marketplace call fails.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewProfile,
    ) -> Result<ProfileView, ProfileError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() {
            return Err(ProfileError::InvalidRequest {
                field: "name",
                message: "must not be empty".to_owned(),
            });
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ProfileError::InvalidRequest {
                field: "name",
                message: format!("must be at most {MAX_NAME_CHARS} characters"),
            });
        }
        let description = new
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(ProfileError::InvalidRequest {
                field: "description",
                message: format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            });
        }
        let ad_account_id =
            AdAccountId::parse(&new.ad_account_id).map_err(|_| ProfileError::InvalidRequest {
                field: "ad_account_id",
                message: "expected act_<digits> or <digits>".to_owned(),
            })?;
        let checked = self.check_token(&new.token, None).await?;
        let ad_account = self
            .usable_ad_account(&checked.token, &ad_account_id)
            .await?;
        let created = self
            .ports
            .marketplace
            .create_profile(&caller.token, &caller.installation, &name, description)
            .await
            .map_err(ProfileError::marketplace)?;
        let id = created.id;
        match self.store_new(caller, id, ad_account, checked).await {
            Ok(stored) => {
                tracing::info!(
                    profile_id = %id,
                    company_id = %caller.company,
                    ad_account_id = %stored.ad_account.id,
                    facebook_user_id = %stored.facebook_user.id,
                    "profile created"
                );
                Ok(self.view(&stored, created))
            }
            Err(error) => {
                self.compensate(caller, id, &error).await;
                Err(error)
            }
        }
    }

    async fn store_new(
        &self,
        caller: &Caller,
        id: ProfileId,
        ad_account: AdAccount,
        checked: CheckedToken,
    ) -> Result<StoredProfile, ProfileError> {
        let token = self
            .ports
            .cipher
            .encrypt(id, &checked.token)
            .map_err(ProfileError::internal("encrypting the token"))?;
        let now = self.now();
        let stored = StoredProfile {
            id,
            company_id: caller.company,
            ad_account,
            audience: None,
            token,
            token_meta: checked.meta,
            facebook_user: checked.user,
            delivery_state: DeliveryState::Ok,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        self.ports
            .store
            .insert_profile(&stored)
            .await
            .map_err(ProfileError::internal("storing the profile"))?;
        Ok(stored)
    }

    /// Archives a marketplace profile whose row could not be stored.
    async fn compensate(&self, caller: &Caller, id: ProfileId, cause: &ProfileError) {
        let archived = self
            .ports
            .marketplace
            .transition_profile(
                &caller.token,
                &caller.installation,
                id,
                ProfileTransition::Archive,
            )
            .await;
        match archived {
            Ok(_) => tracing::warn!(
                profile_id = %id,
                error = %display_chain(cause),
                "profile creation failed after the marketplace profile was created; archived it again"
            ),
            Err(e) => tracing::error!(
                profile_id = %id,
                error = %display_chain(cause),
                compensation_error = %display_chain(&e),
                "profile creation failed and the marketplace profile could not be archived again"
            ),
        }
    }

    /// Enables a disabled profile (`POST /profiles/{id}/enable`) after checking its token and
    /// ad account again. A `needs_reauth` profile is refused with
    /// [`ProfileError::NeedsReauth`] ("re-authorise first"); a token Facebook no longer
    /// accepts marks the profile `needs_reauth` and is refused the same way.
    pub async fn enable(
        &self,
        caller: &Caller,
        id: ProfileId,
    ) -> Result<ProfileView, ProfileError> {
        let stored = self.owned(caller, id).await?;
        if stored.archived_at.is_some() {
            return Err(ProfileError::InvalidState {
                message: "an archived profile cannot be enabled; create a new profile".to_owned(),
            });
        }
        if let DeliveryState::NeedsReauth { reason, .. } = &stored.delivery_state {
            return Err(ProfileError::NeedsReauth {
                reason: reason.clone(),
            });
        }
        let listed = self.marketplace_profile(caller, id).await?;
        match listed.status {
            ProfileStatus::Disabled => {}
            ProfileStatus::Enabled => {
                return Err(ProfileError::InvalidState {
                    message: "the profile is already enabled".to_owned(),
                });
            }
            ProfileStatus::Archived => {
                return Err(ProfileError::InvalidState {
                    message: "an archived profile cannot be enabled; create a new profile"
                        .to_owned(),
                });
            }
        }
        let token = self
            .ports
            .cipher
            .decrypt(id, &stored.token)
            .map_err(ProfileError::internal("decrypting the token"))?;
        let info = self
            .ports
            .facebook
            .token_info(&token)
            .await
            .map_err(ProfileError::facebook)?;
        if !info.is_valid {
            return Err(self.token_stopped_working(id).await);
        }
        let ad_account = match self.usable_ad_account(&token, &stored.ad_account.id).await {
            Err(ProfileError::InvalidToken { .. }) => {
                return Err(self.token_stopped_working(id).await);
            }
            other => other?,
        };
        self.ports
            .store
            .update_ad_account(id, &ad_account)
            .await
            .map_err(ProfileError::internal("updating the ad account"))?;
        let enabled = self
            .transition(caller, id, ProfileTransition::Enable)
            .await?;
        let stored = self.reread(id).await?;
        tracing::info!(profile_id = %id, company_id = %caller.company, "profile enabled");
        Ok(self.view(&stored, enabled))
    }

    async fn token_stopped_working(&self, id: ProfileId) -> ProfileError {
        let reason = "facebook no longer accepts the profile's token (expired or revoked)";
        if let Err(e) = self
            .ports
            .store
            .mark_needs_reauth(id, reason, self.now())
            .await
        {
            return ProfileError::Internal {
                what: "marking the profile needs_reauth",
                source: e,
            };
        }
        tracing::info!(profile_id = %id, "profile needs re-authorisation");
        ProfileError::NeedsReauth {
            reason: reason.to_owned(),
        }
    }

    /// Archives a profile (`POST /profiles/{id}/archive`): in the marketplace, then here (its
    /// token is no longer used and its waiting jobs fail). Archiving an archived profile
    /// answers the profile again.
    pub async fn archive(
        &self,
        caller: &Caller,
        id: ProfileId,
    ) -> Result<ProfileView, ProfileError> {
        self.owned(caller, id).await?;
        let archived = self
            .transition(caller, id, ProfileTransition::Archive)
            .await?;
        self.ports
            .store
            .archive_profile(id, self.now())
            .await
            .map_err(ProfileError::internal("archiving the profile"))?;
        let stored = self.reread(id).await?;
        tracing::info!(profile_id = %id, company_id = %caller.company, "profile archived");
        Ok(self.view(&stored, archived))
    }

    /// Re-authorises a profile (`POST /profiles/{id}/reauthorize`) with a fresh Facebook token
    /// of the **same** Facebook user ([`ProfileError::DifferentUser`] otherwise): checks it
    /// like [`ProfileService::create`] does (validity, scopes, long-lived exchange, the
    /// profile's ad account still usable), replaces the stored token and its expiry facts,
    /// sets the delivery state back to `ok` and resumes the profile's paused jobs, atomically.
    /// Works on `needs_reauth` profiles and, to renew a token before it expires, on `ok` ones.
    pub async fn reauthorize(
        &self,
        caller: &Caller,
        id: ProfileId,
        token: SecretString,
    ) -> Result<Reauthorized, ProfileError> {
        let stored = self.owned(caller, id).await?;
        if stored.archived_at.is_some() {
            return Err(ProfileError::InvalidState {
                message: "an archived profile cannot be re-authorised; create a new profile"
                    .to_owned(),
            });
        }
        let listed = self.marketplace_profile(caller, id).await?;
        let checked = self
            .check_token(&token, Some(&stored.facebook_user.id))
            .await?;
        let ad_account = self
            .usable_ad_account(&checked.token, &stored.ad_account.id)
            .await?;
        let encrypted = self
            .ports
            .cipher
            .encrypt(id, &checked.token)
            .map_err(ProfileError::internal("encrypting the token"))?;
        let store = &self.ports.store;
        let resumed_jobs = store
            .reauthorize(id, &encrypted, &checked.meta, &checked.user, self.now())
            .await
            .map_err(ProfileError::internal("storing the new token"))?;
        if ad_account != stored.ad_account {
            store
                .update_ad_account(id, &ad_account)
                .await
                .map_err(ProfileError::internal("updating the ad account"))?;
        }
        let stored = self.reread(id).await?;
        tracing::info!(
            profile_id = %id,
            company_id = %caller.company,
            resumed_jobs,
            "profile re-authorised"
        );
        Ok(Reauthorized {
            profile: self.view(&stored, listed),
            resumed_jobs,
        })
    }

    /// Disconnects the caller's company (`POST /profiles/disconnect`): revokes the app's
    /// Facebook permissions once for every distinct Facebook user behind the company's
    /// profiles (archived ones included, so a retry after a partial failure revokes again),
    /// and archives every profile of the company that is not archived yet. If some
    /// revocations failed, the profiles are archived all the same and the error says how many
    /// users are left: calling again retries them.
    pub async fn disconnect(&self, caller: &Caller) -> Result<Disconnected, ProfileError> {
        let profiles = self
            .ports
            .store
            .list_profiles(caller.company)
            .await
            .map_err(ProfileError::internal("listing profiles"))?;
        let mut seen = BTreeSet::new();
        let users: Vec<FacebookUserId> = profiles
            .iter()
            .filter(|p| seen.insert(p.facebook_user.id.clone()))
            .map(|p| p.facebook_user.id.clone())
            .collect();
        let revocations = if users.is_empty() {
            Ok(Vec::new())
        } else {
            self.ports.facebook.revoke_permissions(&users).await
        };
        let mut archived = 0_u64;
        for profile in profiles.iter().filter(|p| p.archived_at.is_none()) {
            // a profile the marketplace no longer lists is archived here all the same
            self.ports
                .marketplace
                .transition_profile(
                    &caller.token,
                    &caller.installation,
                    profile.id,
                    ProfileTransition::Archive,
                )
                .await
                .map_err(ProfileError::marketplace)?;
            if self
                .ports
                .store
                .archive_profile(profile.id, self.now())
                .await
                .map_err(ProfileError::internal("archiving the profile"))?
            {
                archived += 1;
            }
        }
        let revocations = revocations.map_err(|e| ProfileError::Upstream {
            service: Upstream::Facebook,
            message: format!(
                "archived {archived} profiles, but revoking the app's facebook permissions failed: try again"
            ),
            source: e,
        })?;
        let revoked = revocations.iter().filter(|(_, r)| r.is_ok()).count() as u64;
        let failed: Vec<Error> = revocations
            .into_iter()
            .filter_map(|(_, r)| r.err())
            .collect();
        tracing::info!(
            company_id = %caller.company,
            archived,
            revoked,
            revoke_failed = failed.len(),
            "company disconnected"
        );
        if let Some(first) = failed.into_iter().next() {
            return Err(ProfileError::Upstream {
                service: Upstream::Facebook,
                message: format!(
                    "archived {archived} profiles and revoked {revoked} of {} facebook users' permissions; the others failed: try again",
                    users.len()
                ),
                source: first,
            });
        }
        Ok(Disconnected { archived, revoked })
    }

    // ------------------------------------------------------------ helpers

    /// The stored profile when it is the caller's company's; [`ProfileError::NotFound`]
    /// otherwise (one database read either way).
    async fn owned(&self, caller: &Caller, id: ProfileId) -> Result<StoredProfile, ProfileError> {
        match self
            .ports
            .store
            .get_profile(id)
            .await
            .map_err(ProfileError::internal("reading the profile"))?
        {
            Some(p) if p.company_id == caller.company => Ok(p),
            _ => Err(ProfileError::NotFound),
        }
    }

    async fn reread(&self, id: ProfileId) -> Result<StoredProfile, ProfileError> {
        self.ports
            .store
            .get_profile(id)
            .await
            .map_err(ProfileError::internal("reading the profile"))?
            .ok_or(ProfileError::NotFound)
    }

    async fn marketplace_profile(
        &self,
        caller: &Caller,
        id: ProfileId,
    ) -> Result<MarketplaceProfile, ProfileError> {
        self.ports
            .marketplace
            .get_profile(&caller.token, &caller.installation, id)
            .await
            .map_err(ProfileError::marketplace)?
            .ok_or(ProfileError::NotFound)
    }

    async fn transition(
        &self,
        caller: &Caller,
        id: ProfileId,
        transition: ProfileTransition,
    ) -> Result<MarketplaceProfile, ProfileError> {
        self.ports
            .marketplace
            .transition_profile(&caller.token, &caller.installation, id, transition)
            .await
            .map_err(ProfileError::marketplace)?
            .ok_or(ProfileError::NotFound)
    }

    fn view(&self, stored: &StoredProfile, listed: MarketplaceProfile) -> ProfileView {
        ProfileView::join(
            stored,
            listed.name,
            listed.description,
            listed.status,
            self.now(),
        )
    }

    /// Checks a customer's Facebook token (valid, both scopes, of `same_user` when given) and
    /// exchanges it for a long-lived one, whose expiry facts are read with `debug_token`.
    async fn check_token(
        &self,
        token: &SecretString,
        same_user: Option<&FacebookUserId>,
    ) -> Result<CheckedToken, ProfileError> {
        let fb = &self.ports.facebook;
        let info = fb.token_info(token).await.map_err(ProfileError::facebook)?;
        if !info.is_valid {
            return Err(invalid_token());
        }
        let missing = info.missing_scopes();
        if !missing.is_empty() {
            return Err(ProfileError::MissingScopes {
                missing: missing.into_iter().map(str::to_owned).collect(),
            });
        }
        if let (Some(expected), Some(actual)) = (same_user, info.user_id.as_ref())
            && expected != actual
        {
            return Err(ProfileError::DifferentUser);
        }
        let long = fb
            .exchange_long_lived(token)
            .await
            .map_err(ProfileError::facebook)?;
        let long_info = fb
            .token_info(&long.token)
            .await
            .map_err(ProfileError::facebook)?;
        if !long_info.is_valid {
            return Err(invalid_token());
        }
        let mut meta = TokenMeta::from_info(&long_info);
        if meta.expires_at.is_none()
            && let Some(seconds) = long.expires_in.filter(|s| *s > 0)
        {
            // debug_token did not say; the exchange did
            meta.expires_at =
                Some(self.now() + time::Duration::seconds(seconds.min(i64::MAX as u64) as i64));
        }
        let user = fb.me(&long.token).await.map_err(ProfileError::facebook)?;
        if let Some(expected) = same_user
            && *expected != user.id
        {
            return Err(ProfileError::DifferentUser);
        }
        Ok(CheckedToken {
            token: long.token,
            meta,
            user,
        })
    }

    /// The ad account when the token reaches it and Custom Audiences can be used in it.
    async fn usable_ad_account(
        &self,
        token: &SecretString,
        id: &AdAccountId,
    ) -> Result<AdAccount, ProfileError> {
        let account = match self.ports.facebook.ad_account(token, id).await {
            Ok(Some(account)) => account,
            Ok(None) | Err(Error::PermissionDenied { .. }) | Err(Error::NotFound { .. }) => {
                return Err(unreachable_ad_account(id));
            }
            Err(e) => return Err(ProfileError::facebook(e)),
        };
        if account.business.is_none() {
            return Err(ProfileError::AdAccount {
                ad_account: id.to_string(),
                reason: "it belongs to no business: add it to a business in facebook business manager, then try again".to_owned(),
            });
        }
        if !account.user_accepted_custom_audience_tos {
            return Err(ProfileError::AdAccount {
                ad_account: id.to_string(),
                reason: format!(
                    "the custom audience terms are not accepted for it: accept them at https://business.facebook.com/ads/manage/customaudiences/tos/?act={}, then try again",
                    id.digits()
                ),
            });
        }
        Ok(account)
    }
}
