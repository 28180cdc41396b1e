//! The one task that writes to the store: buffers key states (latest per key)
//! and request rows, flushes them every interval or when a batch fills, prunes
//! old request rows hourly, and flushes on demand (shutdown).

use super::Store;
use super::rows::{self, RequestRecord};
use crate::keys::Fingerprint;
use crate::pool::KeySnapshot;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

enum StoreEvent {
    KeyState(Fingerprint, Box<KeySnapshot>),
    Request(Box<RequestRecord>),
    Flush(oneshot::Sender<()>),
}

/// Cheap, cloneable sender to the writer. Never blocks: when the buffer is
/// full (the database is down or far behind) the event is dropped and counted.
#[derive(Clone)]
pub struct StoreHandle {
    tx: Option<mpsc::Sender<StoreEvent>>,
    dropped: Arc<AtomicU64>,
}

/// Events buffered between the request path and the writer at most.
const CHANNEL_CAPACITY: usize = 100_000;

impl StoreHandle {
    /// A handle that persists nothing (tests of the pool alone).
    pub fn none() -> Self {
        Self { tx: None, dropped: Arc::default() }
    }

    /// Queues a key's latest state.
    pub fn save_key(&self, fingerprint: Fingerprint, snapshot: &KeySnapshot) {
        self.send(StoreEvent::KeyState(fingerprint, Box::new(snapshot.clone())));
    }

    /// Queues a request row.
    pub fn log_request(&self, record: RequestRecord) {
        self.send(StoreEvent::Request(Box::new(record)));
    }

    /// Writes everything queued so far and waits for it.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(StoreEvent::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, event: StoreEvent) {
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(super) fn start(store: Store, flush_every: Duration, batch_size: usize, retention_days: u32) -> StoreHandle {
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut keys: HashMap<Fingerprint, KeySnapshot> = HashMap::new();
        let mut requests: Vec<RequestRecord> = Vec::new();
        let mut tick = tokio::time::interval(flush_every.max(Duration::from_millis(10)));
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(StoreEvent::KeyState(fp, snapshot)) => { keys.insert(fp, *snapshot); }
                    Some(StoreEvent::Request(record)) => {
                        requests.push(*record);
                        if requests.len() >= batch_size {
                            flush(&store, &mut keys, &mut requests).await;
                        }
                    }
                    Some(StoreEvent::Flush(done)) => {
                        flush(&store, &mut keys, &mut requests).await;
                        let _ = done.send(());
                    }
                    None => {
                        flush(&store, &mut keys, &mut requests).await;
                        return;
                    }
                },
                _ = tick.tick() => flush(&store, &mut keys, &mut requests).await,
                _ = prune.tick() => {
                    let cutoff = rows::now_ms() - i64::from(retention_days) * 86_400_000;
                    if let Err(err) = rows::delete_requests_before(&store, cutoff).await {
                        tracing::warn!("store: pruning old request rows failed: {err}");
                    }
                }
            }
        }
    });
    StoreHandle { tx: Some(tx), dropped: Arc::default() }
}

async fn flush(store: &Store, keys: &mut HashMap<Fingerprint, KeySnapshot>, requests: &mut Vec<RequestRecord>) {
    if !keys.is_empty() {
        match rows::save_key_states(store, keys).await {
            Ok(()) => keys.clear(),
            // Kept and retried next tick: key state must not be lost to a hiccup.
            Err(err) => tracing::warn!("store: saving key state failed, will retry: {err}"),
        }
    }
    if !requests.is_empty() {
        if let Err(err) = rows::insert_requests(store, requests).await {
            tracing::warn!(rows = requests.len(), "store: writing request log failed, rows dropped: {err}");
        }
        requests.clear();
    }
}
