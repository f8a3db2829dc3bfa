//! The handlers: each maps its request onto one [`ProfileService`] call and its answer or
//! error onto the JSON of operations.md. The `#[utoipa::path]` of each handler is its entry in
//! `/openapi.json`; [`crate::app::router`] registers handler and document entry together.
//!
//! [`ProfileService`]: facebook_connector_core::profiles::ProfileService

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use facebook_connector_core::domain::ProfileId;
use facebook_connector_core::profiles::{NewProfile, ProfileError};

use crate::app::AppState;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::dto::{
    CreateProfileRequest, DisconnectResponse, ErrorBody, ProfileDto, ProfileList,
    ReauthorizeRequest, TokenMetadataRequest, TokenMetadataResponse,
};
use crate::error::ApiError;

/// Runs a changing operation on its own task: a request that times out or whose client goes
/// away stops waiting, but the operation is not cut off half-way (a marketplace profile created
/// without its row would otherwise escape the compensation of [`ProfileService::create`]).
///
/// [`ProfileService::create`]: facebook_connector_core::profiles::ProfileService::create
async fn detached<T, F>(operation: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ProfileError>> + Send + 'static,
{
    match tokio::spawn(operation).await {
        Ok(outcome) => outcome.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!(
            "the operation's task failed: {e}"
        ))),
    }
}

/// A path `{id}`: anything that is not a uuid is a profile that does not exist.
fn profile_id(raw: &str) -> Result<ProfileId, ApiError> {
    raw.parse().map_err(|_| ApiError::profile_not_found())
}

/// Who a Facebook token belongs to, its scopes and expiry, and the ad accounts it can use.
///
/// Needs no marketplace token. An invalid token is answered 200 with `token.is_valid: false`
/// and no ad accounts; ad accounts are listed only when the token has `ads_management`.
#[utoipa::path(
    post,
    path = "/tokens/metadata",
    tag = "tokens",
    request_body = TokenMetadataRequest,
    responses(
        (status = 200, description = "What Facebook says about the token", body = TokenMetadataResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 502, description = "Facebook failed", body = ErrorBody),
    )
)]
pub async fn token_metadata(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TokenMetadataRequest>,
) -> Result<Json<TokenMetadataResponse>, ApiError> {
    let metadata = state.service.token_metadata(&body.token).await?;
    Ok(Json(TokenMetadataResponse::from(&metadata)))
}

/// The caller's company's profiles, oldest first (archived ones included).
#[utoipa::path(
    get,
    path = "/profiles",
    tag = "profiles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profiles", body = ProfileList),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 403, description = "The marketplace refused the caller", body = ErrorBody),
        (status = 502, description = "The marketplace failed", body = ErrorBody),
    )
)]
pub async fn list_profiles(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<ProfileList>, ApiError> {
    let profiles = state.service.list(&caller).await?;
    Ok(Json(ProfileList {
        records: profiles.iter().map(ProfileDto::from).collect(),
    }))
}

/// Creates a profile: checks the Facebook token (valid, `ads_management` and
/// `business_management`), exchanges it for a long-lived one, checks the ad account (reachable,
/// owned by a business, Custom Audience terms accepted), creates the marketplace profile
/// (disabled) and stores the token encrypted.
#[utoipa::path(
    post,
    path = "/profiles",
    tag = "profiles",
    security(("bearer" = [])),
    request_body = CreateProfileRequest,
    responses(
        (status = 201, description = "Created (disabled)", body = ProfileDto),
        (status = 400, description = "invalid_request, invalid_token, missing_scopes, invalid_ad_account", body = ErrorBody),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 403, description = "The marketplace refused the caller", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 502, description = "Facebook or the marketplace failed", body = ErrorBody),
    )
)]
pub async fn create_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CreateProfileRequest>,
) -> Result<(StatusCode, Json<ProfileDto>), ApiError> {
    let new = NewProfile {
        name: body.name,
        description: body.description,
        ad_account_id: body.ad_account_id,
        token: body.token,
    };
    let service = state.service.clone();
    let profile = detached(async move { service.create(&caller, new).await }).await?;
    Ok((StatusCode::CREATED, Json(ProfileDto::from(&profile))))
}

/// One profile of the caller's company; 404 for any other id.
#[utoipa::path(
    get,
    path = "/profiles/{id}",
    tag = "profiles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The profile id (a uuid)")),
    responses(
        (status = 200, description = "The profile", body = ProfileDto),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 404, description = "Not the caller's profile", body = ErrorBody),
        (status = 502, description = "The marketplace failed", body = ErrorBody),
    )
)]
pub async fn get_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ProfileDto>, ApiError> {
    let profile = state.service.get(&caller, profile_id(&id)?).await?;
    Ok(Json(ProfileDto::from(&profile)))
}

/// Enables a disabled profile after checking its token and ad account again. A profile that
/// needs re-authorisation is refused (409 `needs_reauth`): re-authorise first.
#[utoipa::path(
    post,
    path = "/profiles/{id}/enable",
    tag = "profiles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The profile id (a uuid)")),
    responses(
        (status = 200, description = "Enabled", body = ProfileDto),
        (status = 400, description = "The ad account can no longer be used", body = ErrorBody),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 404, description = "Not the caller's profile", body = ErrorBody),
        (status = 409, description = "needs_reauth, or not disabled (invalid_state)", body = ErrorBody),
        (status = 502, description = "Facebook or the marketplace failed", body = ErrorBody),
    )
)]
pub async fn enable_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ProfileDto>, ApiError> {
    let (service, id) = (state.service.clone(), profile_id(&id)?);
    let profile = detached(async move { service.enable(&caller, id).await }).await?;
    Ok(Json(ProfileDto::from(&profile)))
}

/// Archives a profile: its token is no longer used and its waiting deliveries fail.
#[utoipa::path(
    post,
    path = "/profiles/{id}/archive",
    tag = "profiles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The profile id (a uuid)")),
    responses(
        (status = 200, description = "Archived", body = ProfileDto),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 404, description = "Not the caller's profile", body = ErrorBody),
        (status = 502, description = "The marketplace failed", body = ErrorBody),
    )
)]
pub async fn archive_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ProfileDto>, ApiError> {
    let (service, id) = (state.service.clone(), profile_id(&id)?);
    let profile = detached(async move { service.archive(&caller, id).await }).await?;
    Ok(Json(ProfileDto::from(&profile)))
}

/// Replaces the profile's Facebook token with a fresh one of the same Facebook user (checked
/// like at creation), sets the delivery state back to `ok` and resumes its paused deliveries.
#[utoipa::path(
    post,
    path = "/profiles/{id}/reauthorize",
    tag = "profiles",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The profile id (a uuid)")),
    request_body = ReauthorizeRequest,
    responses(
        (status = 200, description = "Re-authorised", body = ProfileDto),
        (status = 400, description = "invalid_request, invalid_token, missing_scopes, different_facebook_user, invalid_ad_account", body = ErrorBody),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 404, description = "Not the caller's profile", body = ErrorBody),
        (status = 409, description = "Archived (invalid_state)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 502, description = "Facebook or the marketplace failed", body = ErrorBody),
    )
)]
pub async fn reauthorize_profile(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReauthorizeRequest>,
) -> Result<Json<ProfileDto>, ApiError> {
    let id = profile_id(&id)?;
    let service = state.service.clone();
    let done = detached(async move { service.reauthorize(&caller, id, body.token).await }).await?;
    Ok(Json(ProfileDto::from(&done.profile)))
}

/// Revokes the app's Facebook permissions for every Facebook user behind the company's
/// profiles (once per user) and archives all of the company's profiles.
#[utoipa::path(
    post,
    path = "/profiles/disconnect",
    tag = "profiles",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disconnected", body = DisconnectResponse),
        (status = 401, description = "Missing, malformed or refused bearer token", body = ErrorBody),
        (status = 502, description = "Some revocations failed (profiles archived; call again)", body = ErrorBody),
    )
)]
pub async fn disconnect(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let service = state.service.clone();
    let done = detached(async move { service.disconnect(&caller).await }).await?;
    Ok(Json(DisconnectResponse {
        archived: done.archived,
        revoked: done.revoked,
    }))
}
