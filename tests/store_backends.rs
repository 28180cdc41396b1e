//! The store on PostgreSQL and MariaDB/MySQL (shared by replicas), with the
//! same code and SQL as SQLite: migrations, key state, request rows.
//! Skipped with a message when the database is not reachable.

use gemgate::keys::{ApiKey, Fingerprint, KeyRecord};
use gemgate::pool::KeySnapshot;
use gemgate::store::{RequestRecord, Store};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

async fn exercise(url: &str) {
    let store = match Store::open(url).await {
        Ok(store) => store,
        Err(err) => {
            eprintln!("skipping {url}: {err}");
            return;
        }
    };
    // Migrations are idempotent: opening twice is fine.
    let store = Store::open(url).await.map(|_| store).expect("second open");
    let writer = store.start_writer(Duration::from_millis(20), 100, 30);
    let unique = format!("{:x}", rand::random::<u64>());
    let key = ApiKey::new(format!("AIzastore-{unique:0>29}"));
    let record = KeyRecord { fingerprint: key.fingerprint(), key, group: Arc::from("backend") };
    let snapshot = KeySnapshot { requests: 7, successes: 5, failures: 2, tokens: 99, ..KeySnapshot::default() };
    let slot = Arc::new(gemgate::pool::KeySlot::new(0, record.clone(), &snapshot));
    writer.save_key(&slot, true);
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
            error: None,
        });
    }
    writer.flush().await;
    let states = store.load_key_states().await.expect("load");
    let loaded = states.get(&record.fingerprint).expect("state saved");
    assert_eq!((loaded.requests, loaded.failures, loaded.tokens), (7, 2, 99), "{url}");
    let rows = store.recent_requests(50).await.expect("rows");
    let mine: Vec<_> = rows.iter().filter(|r| r.client == client).collect();
    assert_eq!(mine.len(), 2, "{url}");
    assert_eq!(mine[0].key_fingerprint, Some(record.fingerprint));
    assert!(Fingerprint::parse(&record.fingerprint.to_string()).is_some());
    store.close().await;
}

#[tokio::test]
async fn postgres_store() {
    exercise("postgres://postgres@127.0.0.1:5432/test").await;
}

#[tokio::test]
async fn mariadb_store() {
    exercise("mysql://root@127.0.0.1:3306/test").await;
}
