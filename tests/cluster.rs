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

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_available() -> bool {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !reachable {
        assert!(std::env::var("CI").is_err(), "PostgreSQL must run on 127.0.0.1:5432 under CI");
        eprintln!("skipped: no PostgreSQL");
    }
    reachable
}

/// A replica over the shared PostgreSQL store.
async fn pg_replica(keys: &[String], redis_url: &str, namespace: &str) -> Harness {
    shared_store_replica(keys, redis_url, namespace, POSTGRES).await
}

/// A replica over a shared store at `store`.
async fn shared_store_replica(keys: &[String], redis_url: &str, namespace: &str, store: &str) -> Harness {
    let (url, namespace, store) = (redis_url.to_string(), namespace.to_string(), store.to_string());
    Harness::start_with(keys, move |c| {
        c.cluster.redis_url = url;
        c.cluster.namespace = namespace;
        c.cluster.reconcile_secs = 1;
        // Generous for a debug build under parallel tests: exactness is what is checked here.
        c.cluster.limits_timeout_ms = 500;
        c.store.database_url = store;
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await
}

/// Keys no other test uses (the PostgreSQL store is shared between tests).
fn unique_keys(count: u32) -> Vec<String> {
    let base = rand::random::<u32>() % 1_000_000_000;
    (0..count).map(|n| fake_key("ok", base + n)).collect()
}

async fn make_client(h: &Harness, limits: serde_json::Value) -> (i64, String) {
    let mut body = serde_json::json!({"name": format!("cluster-{:08x}", rand::random::<u32>())});
    if let (Some(body), Some(limits)) = (body.as_object_mut(), limits.as_object()) {
        body.extend(limits.clone());
    }
    let (status, created) = admin_call(h, "POST", "/clients", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (created["client"]["id"].as_i64().unwrap(), created["key"].as_str().unwrap().to_string())
}

async fn call_as(h: &Harness, key: &str, body: &str) -> u16 {
    h.http
        .post(h.url(&format!("/v1beta/models/{MODEL}:generateContent")))
        .header("x-goog-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether `h` knows the client key (a body that is not JSON is refused
/// after authentication and before any limit counts).
async fn knows(h: &Harness, key: &str) -> bool {
    call_as(h, key, "not json").await == 400
}

#[tokio::test]
async fn an_rpm_across_three_replicas_admits_exactly_n_and_admin_changes_reach_all() {
    if !redis_available("127.0.0.1:6379") || !postgres_available() {
        return;
    }
    exactly_n_across(POSTGRES, 3).await;
}

#[tokio::test]
async fn over_mariadb_too_an_rpm_across_two_replicas_admits_exactly_n() {
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    if std::net::TcpStream::connect("127.0.0.1:3306").is_err() {
        assert!(std::env::var("CI").is_err(), "MariaDB must run on 127.0.0.1:3306 under CI");
        return;
    }
    exactly_n_across(MARIADB, 2).await;
}

const MARIADB: &str = "mysql://root@127.0.0.1:3306/test";

/// `count` replicas over one store at `store` and one Redis: an RPM of 10 per
/// replica admits exactly that many of three times as many concurrent
/// requests spread over them; a client made on one and revoked on another
/// is known, then refused, on all.
async fn exactly_n_across(store: &str, count: usize) {
    let url = "redis://127.0.0.1:6379";
    let ns = namespace();
    let keys = unique_keys(4);
    let mut replicas = Vec::new();
    for _ in 0..count {
        replicas.push(shared_store_replica(&keys, url, &ns, store).await);
    }
    for h in &replicas {
        h.eventually("the link is up and every replica is seen", async || {
            let ready = readyz(h).await;
            ready["cluster"] == "up" && ready["replicas"] == count
        })
        .await;
    }
    let n = 10 * count;
    // Made on A: B and C hear of it and read it from the shared store.
    let (id, key) = make_client(&replicas[0], serde_json::json!({"rpm_limit": n})).await;
    for h in &replicas {
        h.eventually("the replica knows the new client", async || knows(h, &key).await).await;
    }
    let calls = (0..3 * n).map(|i| {
        let (h, key) = (&replicas[i % count], &key);
        async move { call_as(h, key, PROMPT).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let admitted = answers.iter().filter(|&&status| status == 200).count();
    let limited = answers.iter().filter(|&&status| status == 429).count();
    assert_eq!((admitted, limited), (n, 2 * n), "{store}: {answers:?}");
    let upstream: usize = replicas.iter().map(|h| h.fake.requests_seen().len()).sum();
    assert_eq!(upstream, n, "only admitted requests went upstream");

    // Revoked on the last: refused on every other too.
    let (status, _) = admin_call(&replicas[count - 1], "DELETE", &format!("/clients/{id}"), None).await;
    assert_eq!(status, 200);
    for h in &replicas {
        h.eventually("the revoke holds on every replica", async || call_as(h, &key, "not json").await == 401).await;
    }
    for h in replicas {
        h.stop().await;
    }
    forget(url, &ns).await;
}

#[tokio::test]
async fn without_redis_each_replica_admits_its_share_of_a_limit() {
    if Command::new("redis-server").arg("--version").output().is_err() || !postgres_available() {
        assert!(std::env::var("CI").is_err(), "redis-server must be installed under CI");
        return;
    }
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let ns = namespace();
    let keys = unique_keys(2);
    let a = pg_replica(&keys, &url, &ns).await;
    let b = pg_replica(&keys, &url, &ns).await;
    for h in [&a, &b] {
        h.eventually("both replicas are seen", async || readyz(h).await["replicas"] == 2).await;
    }
    let (_, key) = make_client(&a, serde_json::json!({"rpm_limit": 10})).await;
    b.eventually("B knows the new client", async || knows(&b, &key).await).await;
    assert_eq!(call_as(&b, &key, PROMPT).await, 200, "counted in Redis");

    redis.stop();
    a.eventually("A says the link is down", async || readyz(&a).await["cluster"] == "down").await;
    // Two replicas were live: each admits half of the 10 on its own, whatever Redis had counted.
    let answers = futures_util::future::join_all((0..8).map(|_| call_as(&a, &key, PROMPT))).await;
    assert_eq!(answers.iter().filter(|&&s| s == 200).count(), 5, "{answers:?}");
    assert!(answers.iter().all(|&s| s == 200 || s == 429), "{answers:?}");

    redis.restart();
    a.eventually("A's link is up again", async || readyz(&a).await["cluster"] == "up").await;
    // Back on the shared counters (a new Redis: the minute starts empty there).
    b.eventually("B admits through Redis again", async || call_as(&b, &key, PROMPT).await == 200).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_day_limit_and_a_token_budget_hold_across_replicas() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") || !postgres_available() {
        return;
    }
    let ns = namespace();
    let keys = unique_keys(2);
    let (a, b) = (pg_replica(&keys, url, &ns).await, pg_replica(&keys, url, &ns).await);
    let (_, daily) = make_client(&a, serde_json::json!({"rpd_limit": 2})).await;
    let (_, budgeted) = make_client(&a, serde_json::json!({"budget_tokens": 5, "budget_period": "day"})).await;
    for key in [&daily, &budgeted] {
        b.eventually("B knows the new clients", async || knows(&b, key).await).await;
    }
    // One request on each replica uses the day; the third is refused wherever it lands.
    assert_eq!(call_as(&a, &daily, PROMPT).await, 200);
    assert_eq!(call_as(&b, &daily, PROMPT).await, 200);
    assert_eq!(call_as(&a, &daily, PROMPT).await, 429, "A counts B's request");
    assert_eq!(call_as(&b, &daily, PROMPT).await, 429);

    // A request on A spends more than the budget; once its spending is
    // settled in Redis, B's first request for the client is refused.
    assert_eq!(call_as(&a, &budgeted, PROMPT).await, 200);
    let redis = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    a.eventually("A's spending is settled in Redis", async || {
        let mut redis = redis.clone();
        let found: Vec<String> =
            redis::cmd("KEYS").arg(format!("{ns}:limits:*:budget:*")).query_async(&mut redis).await.unwrap();
        let mut settled = 0;
        for key in found {
            let (tokens, held): (Option<u64>, Option<u64>) =
                redis::cmd("HMGET").arg(&key).arg("st").arg("ht").query_async(&mut redis).await.unwrap();
            if held == Some(0) {
                settled += tokens.unwrap_or(0);
            }
        }
        settled >= 5
    })
    .await;
    assert_eq!(call_as(&b, &budgeted, PROMPT).await, 429, "B holds A's spending against the budget");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_operator_signed_in_on_one_replica_is_signed_in_on_all() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") || !postgres_available() {
        return;
    }
    let ns = namespace();
    let keys = unique_keys(1);
    let (a, b) = (pg_replica(&keys, url, &ns).await, pg_replica(&keys, url, &ns).await);
    let login =
        a.http.post(a.url("/admin/api/login")).json(&serde_json::json!({"key": ADMIN_KEY})).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    let session = async |h: &Harness| {
        let answer = h.http.get(h.url("/admin/api/session")).header("cookie", &cookie).send().await.unwrap();
        (answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = session(&b).await;
    assert_eq!((status, body["csrf_token"].as_str()), (200, Some(csrf.as_str())), "B serves A's session");
    // Signed out on B: A no longer knows the session.
    let out = b
        .http
        .delete(b.url("/admin/api/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(session(&a).await.0, 401, "the sign-out holds on A");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn replicas_pace_a_key_to_their_share_of_a_declared_limit() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    let ns = namespace();
    let keys = unique_keys(1);
    let paced = |ns: String| {
        let keys = keys.clone();
        async move {
            Harness::start_with(&keys, move |c| {
                c.cluster.redis_url = url.into();
                c.cluster.namespace = ns;
                c.cluster.reconcile_secs = 1;
                c.models.insert(MODEL.into(), gemgate::config::ModelLimits { rpm: 4, rpd: 0 });
            })
            .await
        }
    };
    let (a, b) = (paced(ns.clone()).await, paced(ns.clone()).await);
    for h in [&a, &b] {
        h.eventually("both replicas are seen", async || readyz(h).await["replicas"] == 2).await;
    }
    // The key may serve 4 a minute: each replica leases it twice, so together they keep to 4.
    for h in [&a, &b] {
        let answers = futures_util::future::join_all((0..3).map(|_| h.generate(MODEL))).await;
        let served = answers.iter().filter(|r| r.status() == 200).count();
        assert_eq!(served, 2, "{:?}", answers.iter().map(|r| r.status()).collect::<Vec<_>>());
    }
    let upstream: usize = [&a, &b].iter().map(|h| h.fake.requests_seen().len()).sum();
    assert_eq!(upstream, 4, "the key got exactly its declared 4");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_conversation_keeps_its_key_when_its_requests_land_on_another_replica() {
    let url = "redis://127.0.0.1:6379";
    if !redis_available("127.0.0.1:6379") {
        return;
    }
    let ns = namespace();
    let keys = unique_keys(8);
    let (a, b) = (replica(&keys, url, &ns).await, replica(&keys, url, &ns).await);
    let in_session = async |h: &Harness, session: &str| {
        let answer = h
            .http
            .post(h.url(&format!("/v1beta/models/{MODEL}:generateContent")))
            .header("x-goog-api-key", CLIENT_KEY)
            .header("x-gemgate-session", session)
            .header("content-type", "application/json")
            .body(PROMPT)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    };
    // The key a harness's fake saw the last request on.
    let served_by = |h: &Harness, before: &[u64]| {
        let after: Vec<u64> = keys.iter().map(|k| h.fake.calls(k)).collect();
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(moved.len(), 1, "one key served the request");
        moved[0]
    };
    let calls = |h: &Harness| keys.iter().map(|k| h.fake.calls(k)).collect::<Vec<u64>>();
    let redis = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    for n in 0..5 {
        let session = format!("conversation-{n}-{ns}");
        let before = calls(&a);
        in_session(&a, &session).await;
        let on_a = served_by(&a, &before);
        a.eventually("A told Redis which key the session uses", async || {
            let mut redis = redis.clone();
            let shared: Vec<String> =
                redis::cmd("KEYS").arg(format!("{ns}:affinity:*")).query_async(&mut redis).await.unwrap();
            shared.len() == n + 1
        })
        .await;
        // B has not seen the session: it asks Redis and uses the same key.
        let before = calls(&b);
        in_session(&b, &session).await;
        assert_eq!(served_by(&b, &before), on_a, "session {n} kept its key across replicas");
    }
    a.stop().await;
    b.stop().await;
}

/// A gemgate process of the cluster, in its own folder over the shared stores.
async fn replica_process(dir: &std::path::Path, upstream: &str, port: u16, ns: &str) -> Child {
    spawn_gemgate(
        dir,
        upstream,
        port,
        &[
            ("GEMGATE_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379"),
            ("GEMGATE_CLUSTER__NAMESPACE", ns),
            ("GEMGATE_CLUSTER__RECONCILE_SECS", "1"),
            ("GEMGATE_STORE__DATABASE_URL", POSTGRES),
            ("GEMGATE_STORE__FLUSH_INTERVAL_MS", "20"),
            ("GEMGATE_SCAN__INTERVAL_SECS", "0"),
            ("GEMGATE_AUTH__ADMIN_KEY", ADMIN_KEY),
        ],
    )
    .await
}

#[tokio::test]
async fn killing_a_replica_mid_load_loses_no_key_state_and_the_others_serve_on() {
    if !redis_available("127.0.0.1:6379") || !postgres_available() {
        return;
    }
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.expect("the fake starts");
    let ns = namespace();
    let dead = fake_key("invalid", rand::random::<u32>() % 1_000_000);
    let mut keys = unique_keys(3);
    keys.push(dead.clone());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&dir_a, &dir_b] {
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/test.txt"), keys.join("\n")).unwrap();
    }
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = replica_process(dir_a.path(), &fake.base_url(), port_a, &ns).await;
    let mut b = replica_process(dir_b.path(), &fake.base_url(), port_b, &ns).await;
    let http = reqwest::Client::new();
    let generate = |port: u16| {
        http.post(format!("http://127.0.0.1:{port}/v1beta/models/{MODEL}:generateContent"))
            .header("x-goog-api-key", CLIENT_KEY)
            .header("content-type", "application/json")
            .body(PROMPT)
            .send()
    };
    // Through A, the dead key is found and disabled; B holds it.
    for _ in 0..8 {
        assert_eq!(generate(port_a).await.unwrap().status(), 200, "failover hides the dead key");
    }
    let dead_calls = fake.calls(&dead);
    assert!(dead_calls > 0, "A tried the dead key");
    let waited = Instant::now();
    loop {
        let before = fake.calls(&dead);
        for _ in 0..4 {
            assert_eq!(generate(port_b).await.unwrap().status(), 200);
        }
        if fake.calls(&dead) == before {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(10), "B never learnt the disable");
    }

    // Load on both replicas; A is killed in the middle of it.
    let load = async {
        let mut answers = Vec::new();
        for _ in 0..200 {
            answers.push(generate(port_b).await.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        answers
    };
    let kill = async {
        for _ in 0..20 {
            let _ = generate(port_a).await;
        }
        a.kill().unwrap();
        let _ = a.wait();
    };
    let (answers, ()) = tokio::join!(load, kill);
    assert!(answers.iter().all(|&status| status == 200), "B served every request: {answers:?}");

    // A comes back: it knows the key is dead (from the shared state), without trying it.
    let before = fake.calls(&dead);
    a = replica_process(dir_a.path(), &fake.base_url(), port_a, &ns).await;
    for _ in 0..8 {
        assert_eq!(generate(port_a).await.unwrap().status(), 200);
    }
    assert_eq!(fake.calls(&dead), before, "the restarted replica never tried the dead key");
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
    forget("redis://127.0.0.1:6379", &ns).await;
}

/// Clients' limits counted in the Redis at `url` under `ns`, once Redis has
/// answered `first` (the connection is made in the background; `first`
/// counts); `None` when no Redis runs here.
async fn redis_limits_answering(
    url: &str,
    ns: &str,
    first: gemgate::tenancy::SharedAsk,
) -> Option<(std::sync::Arc<dyn gemgate::tenancy::SharedLimits>, tokio::task::JoinHandle<()>)> {
    if !redis_available(url) {
        return None;
    }
    let config = gemgate::config::ClusterConfig {
        redis_url: url.into(),
        namespace: ns.into(),
        limits_timeout_ms: 1000,
        ..Default::default()
    };
    let (limits, settling) = gemgate::cluster::redis_limits(&config).expect("limits");
    let started = Instant::now();
    while limits.admit(first.clone()).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(5), "Redis answers");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some((limits, settling))
}

#[tokio::test]
async fn the_redis_minute_slides_like_one_process_and_settles_tokens() {
    use gemgate::tenancy::{SharedAsk, SharedSettle, SharedVerdict, Spent};
    let url = "redis://127.0.0.1:6379";
    let ns = namespace();
    let t0 = 1_700_000_000u64;
    let admitted = |tokens: u64| Some(SharedVerdict::Admitted { reserved: Spent { tokens, micros: 0 } });
    let ask = |second: u64, rpm: u32, tpm: u64, tokens: u64| SharedAsk {
        client: std::sync::Arc::from("alice"),
        second,
        rpm,
        rpd: 0,
        tpm,
        estimate: Spent { tokens, micros: 0 },
        day_ends_ms: (t0 + 86_400) * 1000,
        budget: None,
    };
    let Some((limits, _settling)) = redis_limits_answering(url, &ns, ask(t0, 2, 0, 0)).await else { return };
    assert_eq!(limits.admit(ask(t0 + 10, 2, 0, 0)).await, admitted(0));
    let refused = Some(SharedVerdict::Refused { limit: "rpm", until_ms: Some((t0 + 61) * 1000) });
    assert_eq!(limits.admit(ask(t0 + 20, 2, 0, 0)).await, refused);
    assert!(limits.admit(ask(t0 + 60, 2, 0, 0)).await != admitted(0), "a rolling minute");
    assert_eq!(limits.admit(ask(t0 + 61, 2, 0, 0)).await, admitted(0), "the first left");
    let refused = Some(SharedVerdict::Refused { limit: "rpm", until_ms: Some((t0 + 71) * 1000) });
    assert_eq!(limits.admit(ask(t0 + 61, 2, 0, 0)).await, refused);
    // Far ahead (the totals are counted again from the fields): all gone.
    assert_eq!(limits.admit(ask(t0 + 1000, 2, 0, 0)).await, admitted(0));

    // Tokens: estimated at admission, settled to what was spent.
    let bob =
        |second: u64, tokens: u64| SharedAsk { client: std::sync::Arc::from("bob"), ..ask(second, 0, 100, tokens) };
    assert_eq!(limits.admit(bob(t0, 60)).await, admitted(60));
    assert_eq!(limits.admit(bob(t0, 40)).await, admitted(40));
    assert!(matches!(limits.admit(bob(t0 + 1, 1)).await, Some(SharedVerdict::Refused { limit: "tpm", .. })));
    // The first spent only 10: once that is settled, room again.
    limits.settle(SharedSettle {
        client: std::sync::Arc::from("bob"),
        tally: Some((t0, 60)),
        hold: None,
        spent: Spent { tokens: 10, micros: 0 },
        now_ms: t0 * 1000,
    });
    let settled = Instant::now();
    while limits.admit(bob(t0 + 2, 1)).await != admitted(1) {
        assert!(settled.elapsed() < Duration::from_secs(5), "the settle reaches Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut redis = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let total: u64 =
        redis::cmd("HGET").arg(format!("{ns}:limits:bob:minute")).arg("T").query_async(&mut redis).await.unwrap();
    assert_eq!(total, 10 + 40 + 1, "the running total follows the settle");
    let _: () = redis::cmd("DEL")
        .arg(format!("{ns}:limits:alice:minute"))
        .arg(format!("{ns}:limits:bob:minute"))
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// A client busy in one second is admitted in slices the next: one Redis
/// call counts a slice, this replica admits from it, the slice stays within
/// its share of what the limit has left, and what it leaves unused is given
/// back when its second ends.
#[tokio::test]
async fn a_busy_client_is_admitted_in_slices_and_unused_ones_are_given_back() {
    use gemgate::tenancy::{SharedAsk, SharedVerdict, Spent};
    let url = "redis://127.0.0.1:6379";
    let ns = namespace();
    let wall = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Seconds a little ahead of the clock, so the slices' second lasts until
    // the test has looked at them.
    let s = wall() + 3;
    let day_ends_ms = (s + 86_400) * 1000;
    let ask = |client: &str, second: u64, rpm: u32| SharedAsk {
        client: std::sync::Arc::from(client),
        second,
        rpm,
        rpd: 100_000,
        tpm: 0,
        estimate: Spent { tokens: 5, micros: 0 },
        day_ends_ms,
        budget: None,
    };
    let admitted = Some(SharedVerdict::Admitted { reserved: Spent { tokens: 5, micros: 0 } });
    let Some((limits, _settling)) = redis_limits_answering(url, &ns, ask("warm", s, 0)).await else { return };
    let mut redis = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut counted = async |client: &str, field: String| -> u64 {
        let minute = format!("{ns}:limits:{client}:minute");
        let value: Option<u64> = if field == "day" {
            redis::cmd("GET").arg(format!("{ns}:limits:{client}:day:{day_ends_ms}")).query_async(&mut redis).await
        } else {
            redis::cmd("HGET").arg(minute).arg(field).query_async(&mut redis).await
        }
        .unwrap();
        value.unwrap_or(0)
    };

    for _ in 0..10 {
        assert_eq!(limits.admit(ask("dave", s, 10_000)).await, admitted);
    }
    assert_eq!(counted("dave", format!("r:{s}")).await, 10, "one call each while not busy");
    let next = s + 1;
    assert_eq!(limits.admit(ask("dave", next, 10_000)).await, admitted);
    assert_eq!(counted("dave", format!("r:{next}")).await, 10, "one call counts a slice of last second's 10");
    for _ in 0..9 {
        assert_eq!(limits.admit(ask("dave", next, 10_000)).await, admitted);
    }
    assert_eq!(counted("dave", format!("r:{next}")).await, 10, "nine admitted from the slice");
    assert_eq!(limits.admit(ask("dave", next, 10_000)).await, admitted);
    assert_eq!(counted("dave", format!("r:{next}")).await, 20, "used up: the next slice");
    assert_eq!(counted("dave", "day".into()).await, 30);

    // Near its limit a slice is a sixteenth of the room left, and the limit
    // admits exactly its number.
    let mut erin = 0;
    for _ in 0..10 {
        assert_eq!(limits.admit(ask("erin", s, 100)).await, admitted);
        erin += 1;
    }
    assert_eq!(limits.admit(ask("erin", next, 100)).await, admitted);
    erin += 1;
    assert_eq!(counted("erin", format!("r:{next}")).await, 90 / 16, "capped by the room left");
    while limits.admit(ask("erin", next, 100)).await == admitted {
        erin += 1;
        assert!(erin <= 100, "never past the limit");
    }
    assert_eq!(erin, 100, "exactly the limit");

    // Once its second ends, the slice's nine unused requests are given back
    // (the minute and the day).
    let ended = Instant::now();
    while counted("dave", format!("r:{next}")).await != 11 {
        assert!(ended.elapsed() < Duration::from_secs(10), "the unused slice is given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted("dave", "R".into()).await, 21);
    assert_eq!(counted("dave", "day".into()).await, 21);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{ns}:*")).query_async(&mut redis).await.unwrap();
    keys.push(format!("{ns}:nothing"));
    let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
}

#[tokio::test]
async fn under_load_redis_stopped_and_restarted_loses_no_request() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "redis-server must be installed under CI");
        return;
    }
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let ns = namespace();
    let keys = unique_keys(3);
    let start = || {
        let (url, ns, keys) = (url.clone(), ns.clone(), keys.clone());
        async move {
            Harness::start_with(&keys, move |c| {
                c.cluster.redis_url = url;
                c.cluster.namespace = ns;
                c.cluster.reconcile_secs = 1;
                c.auth.admin_key = ADMIN_KEY.into();
            })
            .await
        }
    };
    let (a, b) = (start().await, start().await);
    // A limited client on A: each of its requests asks Redis (or, while it is away, A's share).
    let (_, limited) = make_client(&a, serde_json::json!({"rpm_limit": 1_000_000})).await;
    for h in [&a, &b] {
        h.eventually("the link is up", async || readyz(h).await["cluster"] == "up").await;
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let mut statuses = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let wave = (0..8).map(|n| {
                let limited = &limited;
                let (a, b) = (&a, &b);
                async move {
                    if n % 2 == 0 {
                        call_as(a, limited, PROMPT).await
                    } else {
                        b.generate(MODEL).await.status().as_u16()
                    }
                }
            });
            statuses.extend(futures_util::future::join_all(wave).await);
        }
        statuses
    };
    let outage = async {
        redis.stop();
        for h in [&a, &b] {
            h.eventually("the link is down", async || readyz(h).await["cluster"] == "down").await;
        }
        redis.restart();
        for h in [&a, &b] {
            h.eventually("the link is up again", async || readyz(h).await["cluster"] == "up").await;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (statuses, ()) = tokio::join!(load, outage);
    assert!(statuses.len() >= 16, "load ran through the outage: {}", statuses.len());
    assert!(statuses.iter().all(|&s| s == 200), "no request lost: {statuses:?}");
    eprintln!("{} requests through the outage, all answered", statuses.len());
    a.stop().await;
    b.stop().await;
}
