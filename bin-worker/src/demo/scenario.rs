//! The demo's scenario, seeded into the fake marketplace and the fake Graph API: two
//! customers with a profile each (created through the API's profile code), a legacy
//! subscription delivery (one file with malformed lines and unmatchable records), a connection
//! with quick settings and a Parquet snapshot, a connection created with
//! `historical_data_enabled` (a backfill of its earlier snapshots, then one appended later),
//! and a second customer's delivery into an audience chosen by quick settings, whose token
//! Facebook revokes mid-file.

use std::collections::BTreeMap;
use std::path::Path;

use facebook_connector_core::domain::{
    CompanyId, ConnectionId, DatasetId, FacebookUserId, ProfileId, SettingsId, SubscriptionId,
    TransactionBatchId,
};
use facebook_connector_core::profiles::{NewProfile, ProfileService};
use facebook_marketing::testkit::{AdAccountSpec, FakeGraph, TokenSpec};
use narrative_client::testkit::{FakeMarketplace, LegacyDelivery, Snapshot};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::DemoError;
use super::data::{self, FileSpec, SeededFile};
use super::profiles;
use super::verdict::{
    Expectations, ExpectedAudience, ExpectedDelivery, ExpectedFile, ExpectedRevocation, FileKey,
};

/// Members per upload batch in the demo (several batches per file).
pub const BATCH_SIZE: usize = 5_000;
/// Batches in flight per file (operations.md's default).
pub const UPLOADS_IN_FLIGHT: usize = 2;
/// Facebook revokes the second customer's token after this many acknowledged batches.
const REVOKE_AFTER_BATCHES: u32 = 2;

/// A profile of the scenario.
#[derive(Clone, Debug)]
pub struct DemoProfile {
    /// Its id (the marketplace profile's).
    pub id: ProfileId,
    /// Its name.
    pub name: String,
    /// Its ad account.
    pub ad_account: String,
    /// The customer's marketplace token.
    pub customer: SecretString,
    /// The Facebook user behind it.
    pub user: FacebookUserId,
    /// Its status after creation.
    pub status: String,
    /// Days until its token (or its data access) expires, as the API shows it.
    pub token_expires_in_days: Option<i64>,
}

/// The seeded scenario.
#[derive(Debug)]
pub struct Seeded {
    /// What must happen.
    pub expectations: Expectations,
    /// The profiles, in creation order.
    pub profiles: Vec<DemoProfile>,
    /// The profile whose token Facebook revokes.
    pub revoked: DemoProfile,
    /// After how many batches.
    pub revoke_after_batches: u32,
    /// Records (lines and rows) in every file.
    pub records: u64,
    /// Members to deliver.
    pub members: u64,
    /// Files to deliver.
    pub files: u64,
}

struct Customer<'a> {
    token: &'a str,
    company: i64,
    installation: i64,
    user: &'a str,
    profile: &'a str,
    description: &'a str,
    ad_account: &'a str,
    business: (&'a str, &'a str),
}

/// Creates the customer in the fakes and their profile through the API's code.
async fn customer(
    market: &FakeMarketplace,
    graph: &FakeGraph,
    service: &ProfileService,
    c: &Customer<'_>,
) -> Result<DemoProfile, DemoError> {
    market.add_customer(c.token, CompanyId(c.company), c.installation);
    let user = graph.add_user(c.user);
    let ad_account = graph.add_ad_account(
        &user,
        AdAccountSpec {
            name: c.ad_account.to_owned(),
            business: Some((c.business.0.to_owned(), c.business.1.to_owned())),
            tos_accepted: true,
        },
    );
    // what the UI gets from Facebook login: a short-lived token with both scopes
    let login = graph.issue_token(&user, TokenSpec::default());
    let customer = SecretString::from(c.token.to_owned());
    let profile = profiles::create(
        service,
        &customer,
        NewProfile {
            name: c.profile.to_owned(),
            description: Some(c.description.to_owned()),
            ad_account_id: ad_account.as_str().to_owned(),
            token: login,
        },
    )
    .await
    .map_err(DemoError::Profile)?;
    Ok(DemoProfile {
        id: profile.id,
        name: profile.name,
        ad_account: profile.ad_account.id.as_str().to_owned(),
        customer,
        user,
        status: format!("{:?}", profile.status).to_lowercase(),
        token_expires_in_days: profile.token.expires_in_days,
    })
}

fn spec(seed: u64, records: usize, unmatchable_per_mille: usize, malformed: usize) -> FileSpec {
    FileSpec {
        seed,
        records,
        unmatchable_per_mille,
        malformed,
    }
}

fn expected_files(
    revision: facebook_connector_core::domain::Revision,
    snapshot: Option<&str>,
    files: &[SeededFile],
) -> Vec<ExpectedFile> {
    files
        .iter()
        .map(|f| ExpectedFile {
            key: FileKey {
                revision,
                snapshot: snapshot.map(str::to_owned),
                name: f.name.clone(),
            },
            expected: f.expected.clone(),
        })
        .collect()
}

/// Seeds the scenario; `scratch` holds the Parquet files while they are written.
pub async fn seed(
    market: &FakeMarketplace,
    graph: &FakeGraph,
    service: &ProfileService,
    scratch: &Path,
) -> Result<Seeded, DemoError> {
    let acme = customer(
        market,
        graph,
        service,
        &Customer {
            token: "demo-marketplace-token-acme",
            company: 1001,
            installation: 5001,
            user: "Dana Whitfield",
            profile: "Acme Retail",
            description: "Acme's US prospecting account",
            ad_account: "Acme Retail US",
            business: ("7008009001", "Acme Retail Inc."),
        },
    )
    .await?;
    let northwind = customer(
        market,
        graph,
        service,
        &Customer {
            token: "demo-marketplace-token-northwind",
            company: 1002,
            installation: 5002,
            user: "Sam Okafor",
            profile: "Northwind Travel",
            description: "Newsletter look-alikes",
            ad_account: "Northwind Travel EU",
            business: ("7008009002", "Northwind Travel Ltd"),
        },
    )
    .await?;
    let acme_account = facebook_connector_core::domain::AdAccountId::parse(&acme.ad_account)
        .map_err(|e| DemoError::Seed(e.to_string()))?;
    let northwind_account =
        facebook_connector_core::domain::AdAccountId::parse(&northwind.ad_account)
            .map_err(|e| DemoError::Seed(e.to_string()))?;
    let mut deliveries = Vec::new();
    let mut quiet = Vec::new();
    let now = OffsetDateTime::now_utc();

    // 1. a legacy subscription delivery: a clean file and one with malformed lines and
    //    unmatchable records; no quick settings, so a new audience
    let subscription = SubscriptionId(Uuid::new_v4());
    let files = [
        data::legacy_file("part-00000.jsonl", &spec(11, 24_000, 20, 0)),
        data::legacy_file("part-00001.jsonl", &spec(12, 6_000, 80, 150)),
    ];
    let mut delivery =
        LegacyDelivery::new(acme.id, subscription, TransactionBatchId(Uuid::new_v4()));
    for f in &files {
        delivery = delivery.file(f.name.clone(), f.bytes.clone());
    }
    let revision = market.add_legacy_delivery(delivery);
    let settings_id = SettingsId::Subscription {
        profile_id: acme.id,
        subscription_id: subscription,
    };
    deliveries.push(ExpectedDelivery {
        kind: "subscription delivery".into(),
        profile_name: acme.name.clone(),
        revision,
        settings_id,
        audience: ExpectedAudience::Created {
            name: settings_id.default_audience_name(),
        },
        files: expected_files(revision, None, &files),
    });

    // 2. a connection with quick settings (an audience name): created without historical
    //    data (records nothing), then a Parquet snapshot appended
    let quick = ConnectionId(Uuid::new_v4());
    let quick_dataset = DatasetId(4101);
    market.add_connection_json(json!({
        "id": quick.to_string(),
        "dataset_id": quick_dataset.0,
        "profile_id": acme.id.to_string(),
        "quick_settings": {"audience_name": "Spring sale lookalike seed"},
        "status": "active",
    }));
    quiet.push(market.add_connection_created(quick, now - time::Duration::minutes(50)));
    let files = [
        data::parquet_file("part-00000.parquet", &spec(21, 20_000, 15, 0), scratch)?,
        data::parquet_file("part-00001.parquet", &spec(22, 8_000, 15, 0), scratch)?,
    ];
    let snapshot_id = "snap-2026-12-02-0900";
    let mut snapshot = Snapshot::new(quick_dataset, snapshot_id);
    for f in &files {
        snapshot = snapshot.file(f.name.clone(), f.bytes.clone());
    }
    market.add_snapshot(snapshot);
    let revision = market.add_snapshot_appended(quick, snapshot_id);
    deliveries.push(ExpectedDelivery {
        kind: "snapshot appended".into(),
        profile_name: acme.name.clone(),
        revision,
        settings_id: SettingsId::Connection {
            profile_id: acme.id,
            connection_id: quick,
        },
        audience: ExpectedAudience::Created {
            name: "Spring sale lookalike seed".into(),
        },
        files: expected_files(revision, Some(snapshot_id), &files),
    });

    // 3. a connection created with historical data: its two earlier snapshots are backfilled
    //    (not the one taken after the event), then that later one arrives by its own event
    let backfill = ConnectionId(Uuid::new_v4());
    let backfill_dataset = DatasetId(4102);
    market.add_connection_json(json!({
        "id": backfill.to_string(),
        "dataset_id": backfill_dataset.0,
        "profile_id": acme.id.to_string(),
        "quick_settings": {"historical_data_enabled": "true"},
        "status": "active",
    }));
    let created = now - time::Duration::hours(1);
    let earlier = [
        (
            "snap-2026-11-28",
            created - time::Duration::days(4),
            data::parquet_file("part-00000.parquet", &spec(31, 7_000, 25, 0), scratch)?,
        ),
        (
            "snap-2026-11-30",
            created - time::Duration::days(2),
            data::parquet_file("part-00000.parquet", &spec(32, 5_000, 25, 0), scratch)?,
        ),
    ];
    let later = data::parquet_file("part-00000.parquet", &spec(33, 3_000, 25, 0), scratch)?;
    let later_id = "snap-2026-12-02-1000";
    for (id, at, file) in &earlier {
        market.add_snapshot(
            Snapshot::new(backfill_dataset, *id)
                .at(*at)
                .file(file.name.clone(), file.bytes.clone()),
        );
    }
    market.add_snapshot(
        Snapshot::new(backfill_dataset, later_id)
            .at(created + time::Duration::minutes(30))
            .file(later.name.clone(), later.bytes.clone()),
    );
    let revision = market.add_connection_created(backfill, created);
    let settings_id = SettingsId::Connection {
        profile_id: acme.id,
        connection_id: backfill,
    };
    let audience = ExpectedAudience::Created {
        name: settings_id.default_audience_name(),
    };
    deliveries.push(ExpectedDelivery {
        kind: "connection created (backfill)".into(),
        profile_name: acme.name.clone(),
        revision,
        settings_id,
        audience: audience.clone(),
        files: earlier
            .iter()
            .flat_map(|(id, _, file)| {
                expected_files(revision, Some(id), std::slice::from_ref(file))
            })
            .collect(),
    });
    let revision = market.add_snapshot_appended(backfill, later_id);
    deliveries.push(ExpectedDelivery {
        kind: "snapshot appended".into(),
        profile_name: acme.name.clone(),
        revision,
        settings_id,
        audience,
        files: expected_files(revision, Some(later_id), std::slice::from_ref(&later)),
    });

    // 4. the second customer's delivery into the audience its quick settings name (the
    //    marketplace's camelCase); Facebook revokes the token mid-file
    let existing = graph.add_audience(&northwind_account, "Newsletter subscribers");
    let subscription = SubscriptionId(Uuid::new_v4());
    let file = data::legacy_file("northwind-00000.jsonl", &spec(41, 30_000, 30, 0));
    let revision = market.add_legacy_delivery(
        LegacyDelivery::new(
            northwind.id,
            subscription,
            TransactionBatchId(Uuid::new_v4()),
        )
        .quick_settings(json!({"audienceId": existing.as_str()}))
        .file(file.name.clone(), file.bytes.clone()),
    );
    deliveries.push(ExpectedDelivery {
        kind: "subscription delivery".into(),
        profile_name: northwind.name.clone(),
        revision,
        settings_id: SettingsId::Subscription {
            profile_id: northwind.id,
            subscription_id: subscription,
        },
        audience: ExpectedAudience::Existing {
            id: existing,
            name: "Newsletter subscribers".into(),
        },
        files: expected_files(revision, None, std::slice::from_ref(&file)),
    });

    let all = || deliveries.iter().flat_map(|d| d.files.iter());
    let records = all().map(|f| f.expected.records).sum();
    let members = all().map(|f| f.expected.members).sum();
    let files = all().count() as u64;
    let audiences_per_ad_account = BTreeMap::from([
        (acme_account.as_str().to_owned(), 3),
        (northwind_account.as_str().to_owned(), 1),
    ]);
    Ok(Seeded {
        expectations: Expectations {
            deliveries,
            quiet_revisions: quiet,
            revocation: ExpectedRevocation {
                profile_name: northwind.name.clone(),
                after_batches: REVOKE_AFTER_BATCHES,
            },
            batch_size: BATCH_SIZE as u64,
            uploads_in_flight: UPLOADS_IN_FLIGHT as u64,
            audiences_per_ad_account,
        },
        profiles: vec![acme, northwind.clone()],
        revoked: northwind,
        revoke_after_batches: REVOKE_AFTER_BATCHES,
        records,
        members,
        files,
    })
}
