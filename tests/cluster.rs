//! Replicas sharing key state through Redis: a rest or a disable decided on
//! one replica holds on the others, a late replica catches up, and Redis
//! going away stops no request and heals when it returns. Uses the machine's
//! Redis on 127.0.0.1:6379 (a namespace per test) and, for the outage, a
//! `redis-server` the test starts on a port of its own.

mod support;

use gemgate::key_state::DisableReason;
use gemgate::keys::ApiKey;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const MODEL: &str = "gemini-2.5-flash";

fn namespace() -> String {
    format!("gemgate-test-{:016x}", rand::random::<u64>())
}

async fn replica(keys: &[String], redis_url: &str, namespace: &str) -> Harness {
    let (url, namespace) = (redis_url.to_string(), namespace.to_string());
    Harness::start_with(keys, move |c| {
        c.cluster.redis_url = url;
        c.cluster.namespace = namespace;
        c.cluster.reconcile_secs = 1;
    })
    .await
}

fn redis_available(url: &str) -> bool {
    let reachable = std::net::TcpStream::connect(url.trim_start_matches("redis://")).is_ok();
    if !reachable {
        assert!(std::env::var("CI").is_err(), "Redis must run on {url} under CI");
        eprintln!("skipped: no Redis on {url}");
    }
    reachable
}

/// A key's rests as the replicas share them: model and end, to the millisecond.
async fn rests(h: &Harness, key: &str) -> Vec<(Option<String>, u128)> {
    let snapshot = h.snapshot(key).await;
    let ms = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    snapshot.cooldowns.iter().map(|c| (c.model.as_deref().map(String::from), ms(c.until))).collect()
}

/// Removes a test's keys from Redis.
async fn forget(url: &str, namespace: &str) {
    if let Ok(client) = redis::Client::open(url)
        && let Ok(mut redis) = client.get_multiplexed_async_connection().await
    {
        let _: Result<(), _> = redis::cmd("DEL").arg(format!("{namespace}:key_state")).query_async(&mut redis).await;
    }
}

async fn readyz(h: &Harness) -> serde_json::Value {
    h.http.get(h.url("/readyz")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn rests_and_disables_decided_on_one_replica_hold_on_the_other() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    let ns = namespace();
    let (resting, dead, ok) = (fake_key("rpm", 37), fake_key("invalid", 1), fake_key("ok", 1));
    let keys = vec![resting.clone(), dead.clone(), ok.clone()];
    let a = replica(&keys, url, &ns).await;
    let b = replica(&keys, url, &ns).await;
    a.eventually("replica A's link is up", async || readyz(&a).await["cluster"] == "up").await;
    b.eventually("replica B's link is up", async || readyz(&b).await["cluster"] == "up").await;

    // Through A, every key gets tried: the rpm key rests, the invalid one is disabled.
    for _ in 0..4 {
        assert_eq!(a.generate(MODEL).await.status(), 200);
    }
    a.eventually("A rested and disabled", async || {
        !a.snapshot(&resting).await.cooldowns.is_empty() && a.snapshot(&dead).await.disabled.is_some()
    })
    .await;
    let decided = Instant::now();
    b.eventually("B holds the rest and the disable", async || {
        rests(&b, &resting).await == rests(&a, &resting).await
            && b.snapshot(&dead).await.disabled.map(|d| d.reason) == Some(DisableReason::Invalid)
    })
    .await;
    eprintln!("B saw A's decisions {} ms later", decided.elapsed().as_millis());
    // B avoids both keys: its requests all go to the healthy one.
    let before = b.fake.calls(&resting) + b.fake.calls(&dead);
    for _ in 0..6 {
        assert_eq!(b.generate(MODEL).await.status(), 200);
    }
    assert_eq!(b.fake.calls(&resting) + b.fake.calls(&dead), before, "B used no key A found resting or dead");

    // An operator's disable on A holds on B; the enable too.
    let fingerprint = ApiKey::new(ok.clone()).fingerprint();
    assert!(a.app().pool.set_disabled(fingerprint, Some(DisableReason::Manual)));
    b.eventually("B holds the manual disable", async || {
        b.snapshot(&ok).await.disabled.map(|d| d.reason) == Some(DisableReason::Manual)
    })
    .await;
    assert!(a.app().pool.set_disabled(fingerprint, None));
    b.eventually("B holds the enable", async || b.snapshot(&ok).await.disabled.is_none()).await;
    a.stop().await;
    b.stop().await;
    forget(url, &ns).await;
}

#[tokio::test]
async fn a_replica_that_starts_later_catches_up() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    let ns = namespace();
    let (resting, ok) = (fake_key("rpm", 37), fake_key("ok", 1));
    let keys = vec![resting.clone(), ok];
    let a = replica(&keys, url, &ns).await;
    for _ in 0..3 {
        assert_eq!(a.generate(MODEL).await.status(), 200);
    }
    a.eventually("A rested the key", async || !a.snapshot(&resting).await.cooldowns.is_empty()).await;
    // The decision is in Redis before B starts.
    a.eventually("A's link is up", async || readyz(&a).await["cluster"] == "up").await;
    let b = replica(&keys, url, &ns).await;
    b.eventually("B read the rest at start", async || rests(&b, &resting).await == rests(&a, &resting).await).await;
    a.stop().await;
    b.stop().await;
    forget(url, &ns).await;
}

struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redis_going_away_stops_no_request_and_the_state_heals_when_it_returns() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "redis-server must be installed under CI");
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let ns = namespace();
    let (resting, ok) = (fake_key("rpm", 37), fake_key("ok", 1));
    let keys = vec![resting.clone(), ok];
    let a = replica(&keys, &url, &ns).await;
    let b = replica(&keys, &url, &ns).await;
    a.eventually("A's link is up", async || readyz(&a).await["cluster"] == "up").await;

    redis.stop();
    a.eventually("A says the link is down", async || readyz(&a).await["cluster"] == "down").await;
    let ready = a.http.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "a replica without Redis still serves");
    // Decided while Redis is away: A rests the rpm key; no request fails.
    for _ in 0..3 {
        assert_eq!(a.generate(MODEL).await.status(), 200);
    }
    a.eventually("A rested the key", async || !a.snapshot(&resting).await.cooldowns.is_empty()).await;
    assert!(b.snapshot(&resting).await.cooldowns.is_empty(), "B cannot know yet");

    redis.restart();
    b.eventually("B gets the rest A decided while Redis was away", async || {
        rests(&b, &resting).await == rests(&a, &resting).await
    })
    .await;
    a.eventually("A says the link is up again", async || readyz(&a).await["cluster"] == "up").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn one_replica_per_interval_takes_the_scan_lease_and_its_verdicts_reach_all() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    let ns = namespace();
    let config = gemgate::config::ClusterConfig { redis_url: url.into(), namespace: ns.clone(), ..Default::default() };
    let (first, second) =
        (gemgate::cluster::scan_gate(&config).expect("a gate"), gemgate::cluster::scan_gate(&config).expect("a gate"));
    let interval = Duration::from_millis(300);
    assert!(first(interval).await, "the first replica to ask scans");
    assert!(!second(interval).await, "the other does not, in the same interval");
    assert!(!first(interval).await, "nor does the first again");
    let started = Instant::now();
    while !second(interval).await {
        assert!(started.elapsed() < Duration::from_secs(5), "the lease ends with its interval");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unreachable = gemgate::config::ClusterConfig {
        redis_url: format!("redis://127.0.0.1:{}", free_port()),
        ..Default::default()
    };
    let alone = gemgate::cluster::scan_gate(&unreachable).expect("a gate");
    assert!(alone(interval).await, "without Redis every replica scans");

    // Two replicas scanning every second: the dead key is disabled on both.
    let (dead, ok) = (fake_key("invalid", 1), fake_key("ok", 1));
    let keys = vec![dead.clone(), ok];
    let scanning = |ns: String| {
        let keys = keys.clone();
        async move {
            Harness::start_with(&keys, move |c| {
                c.cluster.redis_url = url.into();
                c.cluster.namespace = ns;
                c.scan.interval_secs = 1;
            })
            .await
        }
    };
    let a = scanning(ns.clone()).await;
    let b = scanning(ns.clone()).await;
    for h in [&a, &b] {
        h.eventually("a scan's verdict holds on this replica", async || {
            h.snapshot(&dead).await.disabled.map(|d| d.reason) == Some(DisableReason::Invalid)
        })
        .await;
    }
    a.stop().await;
    b.stop().await;
    let mut cleanup = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: Result<(), _> = redis::cmd("DEL").arg(format!("{ns}:scan_lease")).query_async(&mut cleanup).await;
    forget(url, &ns).await;
}
