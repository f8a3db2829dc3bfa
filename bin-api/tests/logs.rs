//! Every log line written while profiles are created, described, re-authorised and
//! disconnected (and while bad requests carry tokens) is captured, at debug level for every
//! crate and trace level for the connector's own, and searched for each secret: the
//! marketplace bearer token, the Facebook tokens (short- and long-lived, before and after
//! re-authorisation), the app secret and the token encryption key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Db, World, create_body};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn flow(db: Db, secrets: &mut Vec<(String, String)>) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let ann = w.fb_user("Ann");
    let second = w.fb_user("Bob");
    secrets.push(("marketplace bearer".into(), alice.bearer.clone()));
    secrets.push((
        "short-lived token".into(),
        ann.token.expose_secret().to_owned(),
    ));
    secrets.push((
        "second user's token".into(),
        second.token.expose_secret().to_owned(),
    ));
    secrets.push((
        "token key".into(),
        w.key_material
            .expose_secret()
            .split_once(':')
            .unwrap()
            .1
            .to_owned(),
    ));
    // describe, create two profiles
    let meta = w
        .post(
            "/tokens/metadata",
            None,
            Some(json!({"token": ann.token.expose_secret()})),
        )
        .await;
    assert_eq!(meta.status, 200);
    let p = w.create(&alice, &ann, "one").await;
    let id = p["id"].as_str().unwrap().to_owned();
    w.create(&alice, &second, "two").await;
    let long = w.stored_token(&id).await;
    secrets.push(("long-lived token".into(), long.expose_secret().to_owned()));
    // bad requests carrying tokens
    let bad = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(json!({"name": 1, "ad_account_id": "1", "token": ann.token.expose_secret()})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let in_query = format!("/profiles?access_token={}", ann.token.expose_secret());
    assert_eq!(w.get(&in_query, Some(&alice.bearer)).await.status, 200);
    let refused = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body(
                "x",
                ann.ad_account.as_str(),
                &SecretString::from("EAAFgarbage-token-value".to_owned()),
            )),
        )
        .await;
    assert_eq!(refused.status, 400);
    secrets.push(("garbage token".into(), "EAAFgarbage-token-value".into()));
    // the token stops working; re-authorise
    w.graph.invalidate_token(&long);
    let fresh = w.fresh_token(&ann);
    secrets.push((
        "re-authorisation token".into(),
        fresh.expose_secret().to_owned(),
    ));
    let r = w
        .post(
            &format!("/profiles/{id}/reauthorize"),
            Some(&alice.bearer),
            Some(json!({"token": fresh.expose_secret()})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let renewed = w.stored_token(&id).await;
    secrets.push((
        "renewed long-lived token".into(),
        renewed.expose_secret().to_owned(),
    ));
    // an upstream failure, then disconnect
    // the client tries 4 times
    w.market.fail_next("/installations", 503, 4);
    w.get("/profiles", Some(&alice.bearer)).await;
    let d = w
        .post("/profiles/disconnect", Some(&alice.bearer), None)
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["revoked"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_secret() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(EnvFilter::new(
            "debug,facebook_connector_api=trace,facebook_connector_core=trace,narrative_client=trace,facebook_marketing=trace,connector_resilience=trace,facebook_connector_store=trace",
        ))
        .with_writer(captured.clone())
        .init();
    let mut secrets = vec![(
        "app secret".to_owned(),
        facebook_marketing::testkit::APP_SECRET.to_owned(),
    )];
    flow(Db::Sqlite, &mut secrets).await;
    flow(Db::Postgres, &mut secrets).await;

    let logs = captured.text();
    let lines: Vec<&str> = logs.lines().collect();
    // the capture works: access lines with route templates, the upstream failure logged
    assert!(lines.len() > 20, "{logs}");
    assert!(
        logs.contains(r#""route":"/profiles/{id}/reauthorize""#),
        "{logs}"
    );
    assert!(logs.contains(r#""route":"/profiles/disconnect""#), "{logs}");
    assert!(logs.contains(r#""status":502"#), "{logs}");
    assert!(logs.contains("profile re-authorised"), "{logs}");
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
        for (what, secret) in &secrets {
            assert!(!line.contains(secret.as_str()), "{what} logged: {line}");
        }
        assert!(
            !line.contains("access_token="),
            "query string logged: {line}"
        );
    }
}
