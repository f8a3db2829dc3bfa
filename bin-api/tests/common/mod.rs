//! The API over real HTTP: the fake marketplace and the fake Graph API on their sockets, a real
//! database (each test on PostgreSQL and on SQLite), and the router served as `serve` serves it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use facebook_connector_api::app::{AppOptions, AppState, router};
use facebook_connector_api::auth::AuthCache;
use facebook_connector_core::domain::{
    AdAccountId, CompanyId, DeliveryEvent, EncryptedToken, FileName, FileRef, JobId, NewCommand,
    NewJob, ProfileId, QuickSettings, Revision, SettingsId,
};
use facebook_connector_core::ports::{SystemClock, TokenCipher};
use facebook_connector_core::profiles::{ProfilePorts, ProfileService};
use facebook_connector_host::ops;
use facebook_connector_store::TokenKeyring;
use facebook_connector_store::testkit::TestDb;
use facebook_marketing::testkit::{AdAccountSpec, FakeGraph, TokenSpec};
use facebook_marketing::{GraphClient, RetryPolicy as GraphRetry};
use metrics_exporter_prometheus::PrometheusHandle;
use narrative_client::testkit::FakeMarketplace;
use narrative_client::{HttpConfig, ProfileClient, RetryPolicy};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// Generates one test per backend for each `async fn name(db: Db)` of the including file.
#[macro_export]
#[allow(clippy::crate_in_macro_def)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Db::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Db::Sqlite).await;
                }
            )*
        }
    };
}

/// The process's metrics recorder (installed once per test binary).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            ops::install_recorder().unwrap_or_else(|_| {
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .build_recorder()
                    .handle()
            })
        })
        .clone()
}

/// A cipher whose encryption fails (to prove the compensation of a half-made profile).
pub struct BrokenCipher;

impl TokenCipher for BrokenCipher {
    fn encrypt(
        &self,
        _: ProfileId,
        _: &SecretString,
    ) -> facebook_connector_core::Result<EncryptedToken> {
        Err(facebook_connector_core::Error::Storage {
            source: "the key store is unreachable".into(),
        })
    }
    fn decrypt(
        &self,
        _: ProfileId,
        _: &EncryptedToken,
    ) -> facebook_connector_core::Result<SecretString> {
        Err(facebook_connector_core::Error::Storage {
            source: "the key store is unreachable".into(),
        })
    }
}

/// How a world is built.
pub struct Options {
    pub app: AppOptions,
    pub broken_cipher: bool,
    pub auth_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            app: AppOptions::default(),
            broken_cipher: false,
            auth_ttl: Duration::from_secs(30),
        }
    }
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: HeaderMap,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub struct World {
    pub market: FakeMarketplace,
    pub graph: FakeGraph,
    pub db: TestDb,
    pub keys: Arc<TokenKeyring>,
    pub key_material: SecretString,
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A company's customer: bearer token, company id.
#[derive(Clone, Debug)]
pub struct Customer {
    pub bearer: String,
    pub company: i64,
}

/// A Facebook user with a usable ad account and a fresh short-lived token.
#[derive(Clone, Debug)]
pub struct FbUser {
    pub user: facebook_connector_core::domain::FacebookUserId,
    pub ad_account: AdAccountId,
    pub token: SecretString,
}

impl World {
    pub async fn new(db: Db) -> World {
        World::with(db, Options::default()).await
    }

    pub async fn with(db: Db, options: Options) -> World {
        let market = FakeMarketplace::start().await.unwrap();
        let graph = FakeGraph::start().await.unwrap();
        let db = match db {
            Db::Postgres => TestDb::postgres().await,
            Db::Sqlite => TestDb::sqlite().await,
        };
        let key_material = TokenKeyring::generate_key("k1").unwrap();
        let keys = Arc::new(TokenKeyring::parse(&key_material).unwrap());
        let http_config = HttpConfig {
            retry: RetryPolicy::fast(),
            ..HttpConfig::default()
        };
        let marketplace = ProfileClient::new(market.base_url(), http_config).unwrap();
        let facebook = GraphClient::new(graph.config().with_retry(GraphRetry::fast())).unwrap();
        let cipher: Arc<dyn TokenCipher> = if options.broken_cipher {
            Arc::new(BrokenCipher)
        } else {
            keys.clone()
        };
        let service = ProfileService::new(ProfilePorts {
            marketplace: Arc::new(marketplace),
            facebook: Arc::new(facebook),
            store: db.store.profiles(),
            cipher,
            clock: Arc::new(SystemClock),
        });
        let state = AppState {
            service,
            auth: Arc::new(AuthCache::new(options.auth_ttl)),
        };
        let store = db.store.clone();
        let ready: ops::ReadinessCheck = Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.ping().await.is_ok() })
        });
        let app = router(state, &options.app, metrics(), ready);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let http = connector_resilience::client_builder()
            .unwrap()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        World {
            market,
            graph,
            db,
            keys,
            key_material,
            base: format!("http://{addr}"),
            http,
            stop: Some(stop),
        }
    }

    /// A customer of company `company` (installation `company * 10`).
    pub fn customer(&self, company: i64) -> Customer {
        let bearer = format!("mkt-bearer-{company}-{}", uuid::Uuid::new_v4().simple());
        self.market
            .add_customer(&bearer, CompanyId(company), company * 10);
        Customer { bearer, company }
    }

    /// A Facebook user with a usable ad account and a short-lived token with both scopes.
    pub fn fb_user(&self, name: &str) -> FbUser {
        let user = self.graph.add_user(name);
        let ad_account = self.graph.add_ad_account(&user, AdAccountSpec::default());
        let token = self.graph.issue_token(&user, TokenSpec::default());
        FbUser {
            user,
            ad_account,
            token,
        }
    }

    /// Another fresh short-lived token of the same user.
    pub fn fresh_token(&self, user: &FbUser) -> SecretString {
        self.graph.issue_token(&user.user, TokenSpec::default())
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            headers,
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.request(reqwest::Method::GET, path, bearer, None, &[])
            .await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Option<Value>) -> Answer {
        let body = body.map(|b| reqwest::Body::from(b.to_string()));
        self.request(reqwest::Method::POST, path, bearer, body, &[])
            .await
    }

    /// `POST /profiles` for `user`'s ad account; asserts 201.
    pub async fn create(&self, customer: &Customer, user: &FbUser, name: &str) -> Value {
        let answer = self
            .post(
                "/profiles",
                Some(&customer.bearer),
                Some(create_body(name, user.ad_account.as_str(), &user.token)),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.body
    }

    /// The stored (long-lived) token of a profile, decrypted.
    pub async fn stored_token(&self, id: &str) -> SecretString {
        let id: ProfileId = id.parse().unwrap();
        let stored = self
            .db
            .store
            .profiles()
            .get_profile(id)
            .await
            .unwrap()
            .unwrap();
        self.keys.decrypt(id, &stored.token).unwrap()
    }

    /// Records a legacy delivery with `files` queued jobs for the profile.
    pub async fn enqueue(&self, profile: &str, revision: u64, files: usize) {
        let profile_id: ProfileId = profile.parse().unwrap();
        let subscription_id = uuid::Uuid::new_v4().into();
        let command = NewCommand {
            revision: Revision(revision),
            event: DeliveryEvent::SubscriptionDelivery {
                profile_id,
                subscription_id,
                transaction_batch_id: uuid::Uuid::new_v4().into(),
                quick_settings: QuickSettings::default(),
            },
            settings_id: SettingsId::Subscription {
                profile_id,
                subscription_id,
            },
            jobs: (0..files)
                .map(|i| NewJob {
                    id: JobId::new_v7(),
                    file: FileRef::Legacy {
                        revision: Revision(revision),
                        file: FileName::new(format!("part-{i:04}.jsonl")).unwrap(),
                    },
                    max_attempts: 5,
                })
                .collect(),
        };
        self.db
            .store
            .commands()
            .record_event(
                Revision(revision),
                Some(command),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
    }
}

pub fn create_body(name: &str, ad_account: &str, token: &SecretString) -> Value {
    json!({
        "name": name,
        "description": "a test profile",
        "ad_account_id": ad_account,
        "token": token.expose_secret(),
    })
}
