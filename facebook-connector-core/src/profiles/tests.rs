#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use secrecy::SecretString;
use time::macros::datetime;

use super::*;
use crate::domain::{
    AdAccount, AdAccountId, Business, BusinessId, CompanyId, DeliveryState, EncryptedToken,
    FacebookUser, FacebookUserId, LongLivedToken, ProfileId, ProfileStatus, StoredProfile,
    TokenInfo, TokenMeta,
};
use crate::error::Error;
use crate::ports::{
    Clock, InstallationId, MarketplaceProfile, MockFacebookAccounts, MockProfileDirectory,
    MockProfileStore, MockTokenCipher, ProfileTransition,
};

#[derive(Debug)]
struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> time::OffsetDateTime {
        datetime!(2026-12-01 12:00 UTC)
    }
}

fn caller() -> Caller {
    Caller {
        token: SecretString::from("marketplace-secret".to_owned()),
        company: CompanyId(7),
        installation: InstallationId("42".into()),
    }
}

fn user(id: &str) -> FacebookUser {
    FacebookUser {
        id: FacebookUserId::new(id).unwrap(),
        name: "Ann".into(),
    }
}

fn info(valid: bool, scopes: &[&str], user_id: &str) -> TokenInfo {
    TokenInfo {
        is_valid: valid,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        issued_at: Some(datetime!(2026-12-01 11:00 UTC)),
        expires_at: Some(datetime!(2027-01-30 12:00 UTC)),
        data_access_expires_at: Some(datetime!(2027-03-01 12:00 UTC)),
        user_id: Some(FacebookUserId::new(user_id).unwrap()),
    }
}

fn account(business: bool, tos: bool) -> AdAccount {
    AdAccount {
        id: AdAccountId::parse("act_99").unwrap(),
        name: "acc".into(),
        business: business.then(|| Business {
            id: BusinessId::new("5").unwrap(),
            name: "biz".into(),
        }),
        user_accepted_custom_audience_tos: tos,
    }
}

const BOTH: [&str; 2] = ["ads_management", "business_management"];

/// A Facebook that accepts the token of user 1 and sees `act_99` as given.
fn facebook(acc: AdAccount) -> MockFacebookAccounts {
    let mut fb = MockFacebookAccounts::new();
    fb.expect_token_info()
        .returning(|_| Ok(info(true, &BOTH, "1")));
    fb.expect_exchange_long_lived().returning(|_| {
        Ok(LongLivedToken {
            token: SecretString::from("long-lived".to_owned()),
            expires_in: Some(5_184_000),
        })
    });
    fb.expect_me().returning(|_| Ok(user("1")));
    fb.expect_ad_account()
        .returning(move |_, _| Ok(Some(acc.clone())));
    fb
}

fn cipher() -> MockTokenCipher {
    let mut c = MockTokenCipher::new();
    c.expect_encrypt()
        .returning(|_, _| Ok(EncryptedToken("k1:cipher".into())));
    c
}

fn service(
    market: MockProfileDirectory,
    fb: MockFacebookAccounts,
    store: MockProfileStore,
) -> ProfileService {
    ProfileService::new(ProfilePorts {
        marketplace: Arc::new(market),
        facebook: Arc::new(fb),
        store: Arc::new(store),
        cipher: Arc::new(cipher()),
        clock: Arc::new(Fixed),
    })
}

fn new_profile() -> NewProfile {
    NewProfile {
        name: " Main ".into(),
        description: Some("".into()),
        ad_account_id: "99".into(),
        token: SecretString::from("short-lived".to_owned()),
    }
}

fn created(id: ProfileId) -> MarketplaceProfile {
    MarketplaceProfile {
        id,
        name: "Main".into(),
        description: None,
        status: ProfileStatus::Disabled,
    }
}

#[tokio::test]
async fn create_stores_the_long_lived_token_with_its_expiry() {
    let id = ProfileId(uuid::Uuid::new_v4());
    let mut market = MockProfileDirectory::new();
    market
        .expect_create_profile()
        .withf(|_, _, name, description| name == "Main" && description.is_none())
        .times(1)
        .returning(move |_, _, _, _| Ok(created(id)));
    let mut store = MockProfileStore::new();
    store
        .expect_insert_profile()
        .withf(move |p: &StoredProfile| {
            p.id == id
                && p.company_id == CompanyId(7)
                && p.token.0 == "k1:cipher"
                && p.token_meta.data_access_expires_at == Some(datetime!(2027-03-01 12:00 UTC))
        })
        .times(1)
        .returning(|_| Ok(()));
    let svc = service(market, facebook(account(true, true)), store);
    let view = svc.create(&caller(), new_profile()).await.unwrap();
    assert_eq!(view.id, id);
    assert_eq!(view.status, ProfileStatus::Disabled);
    assert_eq!(view.token.expires_in_days, Some(60));
    assert!(view.token.is_valid);
    assert_eq!(view.ad_account.id.as_str(), "act_99");
}

#[tokio::test]
async fn a_failed_insert_archives_the_marketplace_profile_again() {
    let id = ProfileId(uuid::Uuid::new_v4());
    let mut market = MockProfileDirectory::new();
    market
        .expect_create_profile()
        .times(1)
        .returning(move |_, _, _, _| Ok(created(id)));
    market
        .expect_transition_profile()
        .withf(move |_, _, pid, t| *pid == id && *t == ProfileTransition::Archive)
        .times(1)
        .returning(move |_, _, _, _| {
            Ok(Some(MarketplaceProfile {
                status: ProfileStatus::Archived,
                ..created(id)
            }))
        });
    let mut store = MockProfileStore::new();
    store.expect_insert_profile().times(1).returning(|_| {
        Err(Error::Storage {
            source: "disk full".into(),
        })
    });
    let svc = service(market, facebook(account(true, true)), store);
    let err = svc.create(&caller(), new_profile()).await.unwrap_err();
    assert_eq!(err.code(), "internal_error");
}

#[tokio::test]
async fn create_refuses_before_touching_the_marketplace() {
    // missing scopes are listed
    let mut fb = MockFacebookAccounts::new();
    fb.expect_token_info()
        .returning(|_| Ok(info(true, &["public_profile"], "1")));
    let svc = service(MockProfileDirectory::new(), fb, MockProfileStore::new());
    match svc.create(&caller(), new_profile()).await.unwrap_err() {
        ProfileError::MissingScopes { missing } => {
            assert_eq!(missing, vec!["ads_management", "business_management"])
        }
        other => panic!("{other:?}"),
    }
    // invalid token
    let mut fb = MockFacebookAccounts::new();
    fb.expect_token_info()
        .returning(|_| Ok(info(false, &BOTH, "1")));
    let svc = service(MockProfileDirectory::new(), fb, MockProfileStore::new());
    assert_eq!(
        svc.create(&caller(), new_profile())
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
    // no business, terms not accepted
    for (business, tos, says) in [(false, true, "business"), (true, false, "terms")] {
        let svc = service(
            MockProfileDirectory::new(),
            facebook(account(business, tos)),
            MockProfileStore::new(),
        );
        let err = svc.create(&caller(), new_profile()).await.unwrap_err();
        assert_eq!(err.code(), "invalid_ad_account");
        assert!(err.to_string().contains(says), "{err}");
    }
    // bad ad account id and empty name name their field
    let svc = service(
        MockProfileDirectory::new(),
        MockFacebookAccounts::new(),
        MockProfileStore::new(),
    );
    for (patch, field) in [
        (
            NewProfile {
                ad_account_id: "abc".into(),
                ..new_profile()
            },
            "ad_account_id",
        ),
        (
            NewProfile {
                name: "  ".into(),
                ..new_profile()
            },
            "name",
        ),
    ] {
        match svc.create(&caller(), patch).await.unwrap_err() {
            ProfileError::InvalidRequest { field: f, .. } => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
}

fn stored(id: ProfileId, company: i64, fb_user: &str, archived: bool) -> StoredProfile {
    StoredProfile {
        id,
        company_id: CompanyId(company),
        ad_account: account(true, true),
        audience: None,
        token: EncryptedToken("k1:x".into()),
        token_meta: TokenMeta::default(),
        facebook_user: user(fb_user),
        delivery_state: DeliveryState::NeedsReauth {
            reason: "190".into(),
            since: datetime!(2026-11-30 00:00 UTC),
        },
        archived_at: archived.then_some(datetime!(2026-11-01 00:00 UTC)),
        created_at: datetime!(2026-10-01 00:00 UTC),
        updated_at: datetime!(2026-10-01 00:00 UTC),
    }
}

#[tokio::test]
async fn another_company_s_profile_is_not_found() {
    let id = ProfileId(uuid::Uuid::new_v4());
    let mut store = MockProfileStore::new();
    store
        .expect_get_profile()
        .returning(move |_| Ok(Some(stored(id, 8, "1", false))));
    let svc = service(
        MockProfileDirectory::new(),
        MockFacebookAccounts::new(),
        store,
    );
    let c = caller();
    assert!(matches!(svc.get(&c, id).await, Err(ProfileError::NotFound)));
    assert!(matches!(
        svc.enable(&c, id).await,
        Err(ProfileError::NotFound)
    ));
    assert!(matches!(
        svc.archive(&c, id).await,
        Err(ProfileError::NotFound)
    ));
    assert!(matches!(
        svc.reauthorize(&c, id, SecretString::from("t".to_owned()))
            .await,
        Err(ProfileError::NotFound)
    ));
}

#[tokio::test]
async fn reauthorize_refuses_another_facebook_user_and_enable_needs_reauth_first() {
    let id = ProfileId(uuid::Uuid::new_v4());
    let mut store = MockProfileStore::new();
    store
        .expect_get_profile()
        .returning(move |_| Ok(Some(stored(id, 7, "2", false))));
    let mut market = MockProfileDirectory::new();
    market
        .expect_get_profile()
        .returning(move |_, _, _| Ok(Some(created(id))));
    let svc = service(market, facebook(account(true, true)), store);
    let err = svc
        .reauthorize(&caller(), id, SecretString::from("t".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "different_facebook_user");
    let err = svc.enable(&caller(), id).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauth");
    assert!(err.to_string().contains("re-authorise first"), "{err}");
}

#[tokio::test]
async fn disconnect_revokes_each_user_once_and_archives_the_rest() {
    let ids: Vec<ProfileId> = (0..4).map(|_| ProfileId(uuid::Uuid::new_v4())).collect();
    let rows = vec![
        stored(ids[0], 7, "1", false),
        stored(ids[1], 7, "1", false),
        stored(ids[2], 7, "2", false),
        stored(ids[3], 7, "3", true),
    ];
    let mut store = MockProfileStore::new();
    store
        .expect_list_profiles()
        .withf(|c| *c == CompanyId(7))
        .returning(move |_| Ok(rows.clone()));
    store
        .expect_archive_profile()
        .times(3)
        .returning(|_, _| Ok(true));
    let mut market = MockProfileDirectory::new();
    market
        .expect_transition_profile()
        .times(3)
        .returning(|_, _, _, _| Ok(None));
    let mut fb = MockFacebookAccounts::new();
    fb.expect_revoke_permissions()
        .withf(|users| users.iter().map(|u| u.as_str()).collect::<Vec<_>>() == vec!["1", "2", "3"])
        .times(1)
        .returning(|users| Ok(users.iter().map(|u| (u.clone(), Ok(()))).collect()));
    let svc = service(market, fb, store);
    let out = svc.disconnect(&caller()).await.unwrap();
    assert_eq!(
        out,
        Disconnected {
            archived: 3,
            revoked: 3
        }
    );
}

#[test]
fn debug_output_never_shows_tokens() {
    let printed = format!("{:?} {:?}", caller(), new_profile());
    assert!(!printed.contains("marketplace-secret"), "{printed}");
    assert!(!printed.contains("short-lived"), "{printed}");
}

#[test]
fn profile_errors_map_into_the_core_error() {
    let e: Error = ProfileError::NotFound.into();
    assert!(matches!(e, Error::NotFound { .. }));
    let e: Error = ProfileError::MissingScopes {
        missing: vec!["ads_management".into()],
    }
    .into();
    assert!(matches!(e, Error::Rejected { ref reason, .. } if reason.contains("ads_management")));
}
