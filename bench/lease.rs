//! Lease cost against pool size: lease + settle in the pool's lease book
//! with 10, 1,000 and 10,000 keys, from one task (latency) and from 64 tasks
//! (throughput). The goal is a flat cost: the index never scans the pool.
//!
//! Run: `cargo bench --bench lease`

use gemgate::config::{Strategy, UpstreamConfig};
use gemgate::keys::{ApiKey, KeyRecord};
use gemgate::policy::{DefaultPolicy, shared};
use gemgate::pool::{KeyEvent, PoolHandle, Scanner, SupervisorArgs};
use gemgate::store::StoreHandle;
use gemgate::upstream::UpstreamClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn pool(keys: usize) -> PoolHandle {
    let records = (0..keys)
        .map(|n| {
            let key = ApiKey::new(format!("AIzaok-{n:0>32}"));
            KeyRecord::new(key, Arc::from("bench"))
        })
        .collect();
    let upstream = UpstreamClient::new(&UpstreamConfig::default()).expect("client");
    let policy = shared(DefaultPolicy::new(&Default::default(), &Default::default()));
    PoolHandle::start(SupervisorArgs {
        keys: records,
        persisted: HashMap::new(),
        strategy: Strategy::RoundRobin,
        affinity_ttl: None,
        limits: HashMap::new(),
        store: StoreHandle::none(),
        scanner: Arc::new(Scanner::new(upstream, policy, 1)),
        scan_interval: Duration::ZERO,
        scan_on_start: false,
        sink: None,
        scan_gate: None,
    })
    .await
    .expect("pool starts")
}

async fn one_lease(pool: &PoolHandle, model: &Arc<str>) {
    let lease = pool.lease(model, &[], None).expect("a key");
    lease.settle(KeyEvent::Succeeded { latency: Duration::from_millis(1), tokens: 10 });
    // A request yields while its attempt runs; so the key actors keep up.
    tokio::task::yield_now().await;
}

#[tokio::main]
async fn main() {
    let model: Arc<str> = Arc::from("gemini-2.5-flash");
    let window = Duration::from_secs(2);
    println!("{:>7}  {:>16}  {:>16}", "keys", "1 task: µs/lease", "64 tasks: leases/s");
    let mut results = Vec::new();
    for keys in [10usize, 1_000, 10_000] {
        let pool = pool(keys).await;
        for _ in 0..1000 {
            one_lease(&pool, &model).await;
        }
        let started = Instant::now();
        let mut serial = 0u64;
        while started.elapsed() < window {
            one_lease(&pool, &model).await;
            serial += 1;
        }
        let latency_us = started.elapsed().as_secs_f64() * 1e6 / serial as f64;
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (pool, model) = (pool.clone(), model.clone());
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while started.elapsed() < window {
                        one_lease(&pool, &model).await;
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap_or(0);
        }
        let per_sec = total as f64 / started.elapsed().as_secs_f64();
        println!("{keys:>7}  {latency_us:>16.2}  {per_sec:>16.0}");
        results.push((latency_us, per_sec));
        pool.stop().await;
    }
    let (first, last) = (results[0], results[results.len() - 1]);
    println!(
        "10,000 keys vs 10 keys: latency x{:.2}, throughput x{:.2} (goal: flat, ~1.0)",
        last.0 / first.0,
        last.1 / first.1
    );
}
