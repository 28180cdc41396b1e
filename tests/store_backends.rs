//! The store on PostgreSQL and MariaDB/MySQL (shared by replicas), with the
//! same code and SQL as SQLite: migrations, key state, request rows.
//! Skipped with a message when the database is not reachable, except under
//! `CI=true`, where a missing server is a failure (CI has them all).

use gemgate::key_state::KeySnapshot;
use gemgate::keys::{ApiKey, Fingerprint, KeyRecord};
use gemgate::store::{
    ClientLimits, ErrorRecord, LogFilter, RequestRecord, Retention, Store, UsageBy, UsageKey, UsageTotals,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

async fn exercise(url: &str) {
    let store = match Store::open(url).await {
        Ok(store) => store,
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{url} is not reachable under CI=true: {err}");
        }
        Err(err) => {
            eprintln!("skipping {url}: {err}");
            return;
        }
    };
    // Migrations are idempotent: opening twice is fine.
    let store = Store::open(url).await.map(|_| store).expect("second open");
    let writer = store.start_writer(
        Duration::from_millis(20),
        100,
        Retention { log_days: 30, usage_days: 400, minute_days: 90 },
    );
    let unique = format!("{:x}", rand::random::<u64>());
    let key = ApiKey::new(format!("AIzastore-{unique:0>29}"));
    let record = KeyRecord::new(key, Arc::from("backend"));
    let snapshot = KeySnapshot { requests: 7, successes: 5, failures: 2, tokens: 99, ..KeySnapshot::default() };
    let slot = Arc::new(gemgate::pool::KeySlot::new(0, record.clone(), &snapshot));
    writer.save_key_while(slot.clone(), true, || {});
    let client: Arc<str> = Arc::from(format!("client-{unique}"));
    for status in [200, 429] {
        writer.log_request(RequestRecord {
            at_ms: gemgate::store::now_ms(),
            client: client.clone(),
            route: Cow::Borrowed("generateContent"),
            model: Arc::from("gemini-2.5-flash"),
            key_fingerprint: Some(record.fingerprint),
            attempts: 1,
            status,
            latency_ms: 12,
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            error: (status != 200).then(|| format!("429 rate_limited: 100% {unique}")),
            request_id: Some(Arc::from(format!("req-{unique}-{status}"))),
        });
    }
    writer.log_error(ErrorRecord {
        at_ms: gemgate::store::now_ms(),
        client: client.clone(),
        route: Cow::Borrowed("generateContent"),
        model: Arc::from("gemini-2.5-flash"),
        key_fingerprint: Some(record.fingerprint),
        attempt: 1,
        http_status: 429,
        google_status: "RESOURCE_EXHAUSTED".into(),
        reason: None,
        kind: "rate_limited".into(),
        message: format!("Quota exceeded {unique}"),
        request_id: Some(Arc::from(format!("req-{unique}-200"))),
        latency_ms: Some(42),
    });
    writer.flush().await;
    let states = store.load_key_states().await.expect("load");
    let loaded = states.get(&record.fingerprint).expect("state saved");
    assert_eq!((loaded.requests, loaded.failures, loaded.tokens), (7, 2, 99), "{url}");
    let rows = store.recent_requests(50).await.expect("rows");
    let mine: Vec<_> = rows.iter().filter(|r| r.client == client).collect();
    assert_eq!(mine.len(), 2, "{url}");
    assert_eq!(mine[0].key_fingerprint, Some(record.fingerprint));
    assert!(Fingerprint::parse(&record.fingerprint.to_string()).is_some());

    // The admin's queries: filters, case-insensitive text with literal wildcards, paging.
    let by_client = LogFilter { client: Some(client.to_string()), ..LogFilter::default() };
    let page = store.find_requests(&by_client, 1, 0).await.expect("find requests");
    assert_eq!((page.total, page.rows.len()), (2, 1), "{url}");
    let text = LogFilter { text: Some(format!("100% {}", unique.to_uppercase())), ..LogFilter::default() };
    assert_eq!(store.find_requests(&text, 10, 0).await.expect("search").total, 1, "{url}");
    let wild = LogFilter { text: Some(format!("1_0% {unique}")), ..LogFilter::default() };
    assert_eq!(store.find_requests(&wild, 10, 0).await.expect("search").total, 0, "{url}: _ is literal");
    let errors =
        LogFilter { text: Some(format!("quota EXCEEDED {unique}")), status: Some(429), ..LogFilter::default() };
    let found = store.find_errors(&errors, 10, 0).await.expect("find errors");
    assert_eq!(found.total, 1, "{url}");
    assert_eq!(found.rows[0].google_status, "RESOURCE_EXHAUSTED");
    // Tracing: one request by its id, its failed attempt under the same id,
    // and statuses by class.
    let traced = LogFilter { request_id: Some(format!("req-{unique}-200")), ..LogFilter::default() };
    let page = store.find_requests(&traced, 10, 0).await.expect("by request id");
    assert_eq!((page.total, page.rows[0].status), (1, 200), "{url}");
    let attempts = store.find_errors(&traced, 10, 0).await.expect("attempts by request id");
    assert_eq!((attempts.total, attempts.rows[0].latency_ms), (1, Some(42)), "{url}");
    let class = LogFilter { client: Some(client.to_string()), status_class: Some(4), ..LogFilter::default() };
    let page = store.find_requests(&class, 10, 0).await.expect("by class");
    assert_eq!((page.total, page.rows[0].status), (1, 429), "{url}");
    // Per-minute rollups: added up per flush, read back per bucket.
    let minute = gemgate::store::minute_of(gemgate::store::now_ms());
    for (status, latency) in [(200, 7), (200, 700), (429, 3)] {
        let key = gemgate::store::MinuteKey {
            minute_ms: minute,
            client: client.clone(),
            model: Arc::from("gemini-2.5-flash"),
            group: Arc::from(if status == 200 { "backend" } else { "" }),
            status,
        };
        writer.add_minute(key, gemgate::store::MinuteTotals::one(latency, 5));
        writer.flush().await;
    }
    let minutes = store.minute_rows(minute, minute + 59_999, 60_000, 1000).await.expect("minute rows");
    let mine: Vec<_> = minutes.iter().filter(|r| r.client == *client).collect();
    assert_eq!(mine.len(), 2, "{url}: one row per status");
    let ok = mine.iter().find(|r| r.status == 200).expect("the 200s");
    assert_eq!((ok.totals.requests, ok.totals.tokens, ok.totals.latency_max_ms), (2, 10, 700), "{url}");
    assert_eq!((ok.totals.latency[1], ok.totals.latency[7]), (1, 1), "{url}: 7 ms and 700 ms in their buckets");
    assert_eq!(ok.group, "backend");
    let google_429 = store.google_429_rows(gemgate::store::now_ms() - 60_000, 1000).await.expect("429 rows");
    let mine: Vec<_> = google_429.iter().filter(|r| r.client == *client).collect();
    assert_eq!(mine.len(), 1, "{url}");
    assert_eq!((mine[0].status, mine[0].latency_ms, mine[0].total_tokens), (429, 42, 0), "{url}");

    // Usage: replies added up per hour, client, model and group, twice over
    // (the second flush adds to the rows the first wrote).
    let hour = gemgate::store::hour_of(gemgate::store::now_ms());
    let usage_key = UsageKey {
        hour_ms: hour,
        client: client.clone(),
        model: Arc::from("gemini-2.5-flash"),
        group: Arc::from("backend"),
    };
    let one = UsageTotals {
        requests: 1,
        input_tokens: 10,
        output_tokens: 5,
        thinking_tokens: 2,
        cached_tokens: 4,
        cost_micros: 1_500,
    };
    for _ in 0..2 {
        writer.add_usage(usage_key.clone(), one);
        writer.add_usage(usage_key.clone(), one);
        writer.flush().await;
    }
    let rows = store.usage(hour, hour + 3_600_000, UsageBy::Client).await.expect("usage");
    let mine = rows.iter().find(|r| r.name == *client).expect("usage row");
    assert_eq!(mine.totals.requests, 4, "{url}");
    assert_eq!((mine.totals.cached_tokens, mine.totals.cost_micros), (16, 6_000), "{url}");
    let by_group = store.usage(hour, hour + 3_600_000, UsageBy::Group).await.expect("usage");
    assert!(by_group.iter().any(|r| r.name == "backend" && r.totals.thinking_tokens >= 8), "{url}");
    let spent = store.spent_since(hour).await.expect("spent");
    assert_eq!(spent.get(&*client), Some(&(60, 6_000)), "{url}");

    // Client keys: stored hashed, updated, revoked.
    let hash = format!("{unique:0>64}");
    let limits = ClientLimits {
        rpm_limit: 5,
        allowed_models: vec!["gemini-2.5-flash".into()],
        expires_ms: Some(4_102_444_800_000),
        budget_micros: 2_500_000,
        budget_period: gemgate::config::BudgetPeriod::Week,
        ..ClientLimits::default()
    };
    let made = store.insert_client_key(&format!("c-{unique}"), &hash, "gg-…abcd", &limits).await.expect("insert");
    assert_eq!(made.allowed_models, limits.allowed_models, "{url}");
    assert_eq!((made.budget_micros, made.period()), (2_500_000, gemgate::config::BudgetPeriod::Week), "{url}");
    assert_eq!((made.expires_ms, made.disabled_ms), (Some(4_102_444_800_000), None), "{url}");
    let disabled = ClientLimits { enabled: false, ..limits.clone() };
    assert!(store.update_client_limits(made.id, &disabled).await.expect("disable"));
    let since = store.client_key(made.id).await.expect("read").expect("exists").disabled_ms;
    assert!(since.is_some(), "{url}");
    assert!(store.update_client_limits(made.id, &disabled).await.expect("disable again"));
    let again = store.client_key(made.id).await.expect("read").expect("exists").disabled_ms;
    assert_eq!(again, since, "a second disable keeps when it began: {url}");
    let more = ClientLimits { rpm_limit: 9, expires_ms: None, ..limits };
    assert!(store.update_client_limits(made.id, &more).await.expect("update"));
    let enabled = store.client_key(made.id).await.expect("read").expect("exists");
    assert_eq!((enabled.disabled_ms, enabled.expires_ms), (None, None), "{url}");
    assert!(store.revoke_client_key(made.id).await.expect("revoke"));
    assert!(!store.revoke_client_key(made.id).await.expect("revoke twice"), "{url}");
    let back = store.client_key(made.id).await.expect("read").expect("exists");
    assert_eq!((back.rpm_limit, back.revoked_ms.is_some()), (9, true), "{url}");
    store.close().await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display())).await;
}

#[tokio::test]
async fn postgres_store() {
    exercise("postgres://postgres@127.0.0.1:5432/test").await;
}

#[tokio::test]
async fn mariadb_store() {
    exercise("mysql://root@127.0.0.1:3306/test").await;
}

/// A new, empty database on a server (`CREATE DATABASE`); its URL, or
/// `None` when the server is not reachable outside CI.
async fn fresh_database(server: &str, name: &str) -> Option<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    match sqlx::AnyConnection::connect(&format!("{server}/test")).await {
        Ok(mut conn) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
            Some(format!("{server}/{name}"))
        }
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => panic!("{server} is not reachable under CI: {err}"),
        Err(err) => {
            eprintln!("skipping {server}: {err}");
            None
        }
    }
}

async fn drop_database(server: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::AnyConnection::connect(&format!("{server}/test")).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&mut conn).await;
    }
}

/// What a store holds, in a form two stores can be compared by.
async fn contents(store: &Store) -> Vec<String> {
    let mut states: Vec<String> =
        store.load_key_states().await.unwrap().iter().map(|(fp, s)| format!("{fp} {s:?}")).collect();
    states.sort();
    let requests = store.find_requests(&LogFilter::default(), 1000, 0).await.unwrap();
    let errors = store.find_errors(&LogFilter::default(), 1000, 0).await.unwrap();
    let usage = store.usage(0, i64::MAX, UsageBy::Client).await.unwrap();
    let minutes = store.minute_rows(0, i64::MAX, 60_000, 100_000).await.unwrap();
    let mut lines = states;
    lines.push(format!("{minutes:?}"));
    lines.push(format!("{:?}", store.client_keys().await.unwrap()));
    lines.push(format!("{} {:?}", requests.total, requests.rows));
    lines.push(format!("{} {:?}", errors.total, errors.rows));
    lines.push(format!("{usage:?}"));
    lines
}

#[tokio::test]
async fn an_sqlite_store_migrates_into_postgres_and_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("source.db").display());
    exercise(&sqlite).await;
    let source = Store::open(&sqlite).await.unwrap();
    let expires = gemgate::store::now_ms() + 60_000;
    source.put_admin_session(&"a".repeat(64), &"t".repeat(64), "csrf-token", expires).await.unwrap();
    let kept = gemgate::store::StoredResponse {
        items: "[{\"role\":\"user\"}]".into(),
        response: "{\"id\":\"resp_1\"}".into(),
    };
    source.put_response("resp_1", "alice", &kept, expires).await.unwrap();
    let before = contents(&source).await;
    for server in ["postgres://postgres@127.0.0.1:5432", "mysql://root@127.0.0.1:3306"] {
        let name = format!("gg_migrate_{:08x}", rand::random::<u32>());
        let Some(url) = fresh_database(server, &name).await else { continue };
        let target = Store::open(&url).await.unwrap();
        let copied = source.copy_into(&target).await.expect("copied");
        let rows: u64 = copied.iter().map(|(_, n)| n).sum();
        assert!(copied.iter().all(|(_, n)| *n > 0), "every table had rows: {copied:?}");
        assert_eq!(contents(&target).await, before, "{server}: the same contents");
        assert_eq!(
            target.admin_session(&"a".repeat(64), &"t".repeat(64)).await.unwrap(),
            Some(("csrf-token".to_string(), expires))
        );
        assert_eq!(target.response("resp_1", "alice").await.unwrap().as_ref(), Some(&kept), "{server}");
        assert_eq!(target.response("resp_1", "bob").await.unwrap(), None, "{server}: only its client's");
        assert!(!target.delete_response("resp_1", "bob").await.unwrap());
        assert!(target.delete_response("resp_1", "alice").await.unwrap());
        // A second copy would mix two stores: refused, nothing written.
        let again = source.copy_into(&target).await;
        assert!(matches!(again, Err(gemgate::store::CopyError::TargetNotEmpty("key_state"))), "{again:?}");
        // New rows get new ids (PostgreSQL's sequence moved past the copied ones).
        let made = target
            .insert_client_key("after", &"f".repeat(64), "gg-…ffff", &ClientLimits::default())
            .await
            .expect("a new client key after the copy");
        assert!(source.client_keys().await.unwrap().iter().all(|c| c.id < made.id), "{server}");
        eprintln!("{server}: {rows} rows copied");
        target.close().await;
        drop_database(server, &name).await;
    }
    source.close().await;
}
