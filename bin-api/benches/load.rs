//! Load check of `GET /profiles` (issue 10, item 9): the API served as in the tests, the fake
//! marketplace answering every profile listing after 20 ms, a real database with a company of
//! five profiles; `LOAD_CONCURRENCY` clients on keep-alive connections send `LOAD_REQUESTS`
//! requests in all. Prints throughput, latency percentiles and the process's resident memory
//! along the run (server, fakes and clients share the process, so the figures are
//! conservative).
//!
//! ```sh
//! cargo bench -p facebook-connector-api --bench load              # optimised (bench profile)
//! LOAD_DB=postgres LOAD_REQUESTS=20000 cargo bench -p facebook-connector-api --bench load
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Db, World};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line
    let requests: usize = env_or("LOAD_REQUESTS", 100_000);
    let concurrency: usize = env_or("LOAD_CONCURRENCY", 100);
    let latency_ms: u64 = env_or("MARKET_LATENCY_MS", 20);
    let db = match std::env::var("LOAD_DB").as_deref() {
        Ok("postgres") => Db::Postgres,
        _ => Db::Sqlite,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(db, requests, concurrency, latency_ms));
}

async fn run(db: Db, requests: usize, concurrency: usize, latency_ms: u64) {
    let w = Arc::new(World::new(db).await);
    let alice = w.customer(1);
    for i in 0..5 {
        let user = w.fb_user(&format!("user {i}"));
        w.create(&alice, &user, &format!("profile {i}")).await;
    }
    // every listing of the installation's profiles answers after `latency_ms`
    w.market.delay_next(
        "/installations/10/profiles",
        Duration::from_millis(latency_ms),
        usize::MAX,
    );
    let url = format!("{}/profiles", w.base);
    let client = connector_resilience::client_builder()
        .unwrap()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    // warm-up: connections, the auth cache, the database pool
    for _ in 0..concurrency.min(200) {
        let r = client
            .get(&url)
            .bearer_auth(&alice.bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    w.market.clear_calls();
    let rss_start = rss_kib();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(usize, u64)>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bearer) = (client.clone(), url.clone(), alice.bearer.clone());
        let (next, done, samples, w) = (next.clone(), done.clone(), samples.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests / concurrency + 1);
            let mut errors = 0_usize;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                match client.get(&url).bearer_auth(&bearer).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 10_000 == 0 {
                    // the fake keeps every call it saw; forget them so only the API is measured
                    w.market.clear_calls();
                    samples.lock().unwrap().push((n, rss_kib()));
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let rps = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "GET /profiles on {db:?}: {} requests, {concurrency} concurrent, marketplace {latency_ms} ms",
        latencies.len()
    );
    println!(
        "  {rps:.0} req/s in {:.1} s, errors {errors}",
        elapsed.as_secs_f64()
    );
    println!(
        "  latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0)
    );
    let mut samples = samples.lock().unwrap().clone();
    samples.sort_unstable();
    let rss: Vec<String> = samples
        .iter()
        .map(|(n, kib)| format!("{}k: {} MiB", n / 1000, kib / 1024))
        .collect();
    println!(
        "  resident memory: start {} MiB; {}",
        rss_start / 1024,
        rss.join(", ")
    );
}
