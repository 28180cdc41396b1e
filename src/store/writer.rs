//! The one task that writes to the store. The request path only pushes into a
//! shared buffer under a short lock (no task wake-up per request); the writer
//! drains it every flush interval, when a batch fills, or on demand. Key state
//! is buffered latest-wins per key; request rows in order; usage and request
//! rollups added up. Old rows are pruned hourly.

use super::Store;
use super::log_query::{self, ErrorRecord};
use super::minutes::{self, MinuteKey, MinuteTotals};
use super::rows::{self, RequestRecord};
use super::usage::{self, UsageKey, UsageTotals};
use crate::key_state::KeySnapshot;
use crate::keys::Fingerprint;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// A key whose state the writer reads when it writes (the pool's slots):
/// the store knows what a key's state is, not where it lives.
pub trait SavedKey: Send + Sync {
    /// The key's fingerprint (the row's id).
    fn fingerprint(&self) -> Fingerprint;
    /// Its state and counters now.
    fn snapshot(&self) -> KeySnapshot;
}

#[derive(Default)]
struct Pending {
    /// Keys whose state (disabled, cooldowns) changed: written at the next tick.
    keys: HashMap<Fingerprint, Arc<dyn SavedKey>>,
    /// Keys whose counters moved: written every [`COUNTER_FLUSH`], so a busy
    /// pool of 10,000 keys does not rewrite every key every second.
    counters: HashMap<Fingerprint, Arc<dyn SavedKey>>,
    requests: Vec<RequestRecord>,
    errors: Vec<ErrorRecord>,
    /// Usage added up since the last write.
    usage: HashMap<UsageKey, UsageTotals>,
    /// Requests per minute added up since the last write.
    minutes: HashMap<MinuteKey, MinuteTotals>,
}

/// How often moved counters are written (and on flush and shutdown).
const COUNTER_FLUSH: Duration = Duration::from_secs(30);

struct Shared {
    pending: Mutex<Pending>,
    batch_full: Notify,
    batch_size: usize,
    dropped: AtomicU64,
    /// The share of successful requests' rows kept, as `f64` bits.
    success_sample: AtomicU64,
}

/// Request rows buffered at most while the database is slow or down; past
/// this, rows are dropped and counted (key state is never dropped).
const MAX_BUFFERED_ROWS: usize = 100_000;

/// Cheap, cloneable handle to the writer. Never blocks the caller.
#[derive(Clone)]
pub struct StoreHandle {
    shared: Option<Arc<Shared>>,
    flush: Option<mpsc::Sender<oneshot::Sender<()>>>,
}

impl StoreHandle {
    /// A handle that persists nothing (tests of the pool alone).
    pub fn none() -> Self {
        Self { shared: None, flush: None }
    }

    /// Marks a key for saving; its state is read when written, so a busy key
    /// costs one map entry, not a copy per request. A state change is written
    /// at the next tick, moved counters within `COUNTER_FLUSH` (30 s).
    ///
    /// `publish` (the actor making the new state visible) runs under the
    /// queue's lock, so no flush can fall between the two.
    pub fn save_key_while(&self, key: Arc<dyn SavedKey>, state_changed: bool, publish: impl FnOnce()) {
        match &self.shared {
            Some(shared) => {
                let mut pending = lock(&shared.pending);
                publish();
                let map = if state_changed { &mut pending.keys } else { &mut pending.counters };
                map.insert(key.fingerprint(), key);
            }
            None => publish(),
        }
    }

    /// Keeps `share` (0 to 1) of successful requests' rows from now on;
    /// failed requests' rows are always kept.
    pub fn sample_successes(&self, share: f64) {
        if let Some(shared) = &self.shared {
            shared.success_sample.store(share.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
    }

    /// Queues a request row (a successful one as sampled).
    pub fn log_request(&self, record: RequestRecord) {
        if let Some(shared) = &self.shared
            && record.status < 400
        {
            let share = f64::from_bits(shared.success_sample.load(Ordering::Relaxed));
            if share < 1.0 && rand::random::<f64>() >= share {
                return;
            }
        }
        self.queue_row(|pending| &mut pending.requests, record, true);
    }

    /// Queues a failed attempt for the error log.
    pub fn log_error(&self, record: ErrorRecord) {
        self.queue_row(|pending| &mut pending.errors, record, false);
    }

    /// Adds one reply's usage to its hour's total.
    pub fn add_usage(&self, key: UsageKey, totals: UsageTotals) {
        let Some(shared) = &self.shared else { return };
        let mut pending = lock(&shared.pending);
        if pending.usage.len() >= MAX_BUFFERED_ROWS && !pending.usage.contains_key(&key) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *pending.usage.entry(key).or_default() += totals;
    }

    /// Adds one request to its minute's rollup.
    pub fn add_minute(&self, key: MinuteKey, totals: MinuteTotals) {
        let Some(shared) = &self.shared else { return };
        let mut pending = lock(&shared.pending);
        if pending.minutes.len() >= MAX_BUFFERED_ROWS && !pending.minutes.contains_key(&key) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *pending.minutes.entry(key).or_default() += totals;
    }

    /// Pushes a row onto one of the pending lists, dropping (and counting) it
    /// past [`MAX_BUFFERED_ROWS`]; a full batch of `wakes` rows wakes the writer.
    fn queue_row<T>(&self, list: impl FnOnce(&mut Pending) -> &mut Vec<T>, row: T, wakes: bool) {
        let Some(shared) = &self.shared else { return };
        let mut pending = lock(&shared.pending);
        let rows = list(&mut pending);
        if rows.len() >= MAX_BUFFERED_ROWS {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        rows.push(row);
        if wakes && rows.len() == shared.batch_size {
            shared.batch_full.notify_one();
        }
    }

    /// Writes everything queued so far and waits for it.
    pub async fn flush(&self) {
        let Some(flush) = &self.flush else { return };
        let (done, wait) = oneshot::channel();
        if flush.send(done).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Request rows dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long rows are kept, in days.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Request and error rows.
    pub log_days: u32,
    /// Hourly usage.
    pub usage_days: u32,
    /// Requests per minute (the stats and charts).
    pub minute_days: u32,
}

pub(super) fn start(store: Store, flush_every: Duration, batch_size: usize, retention: Retention) -> StoreHandle {
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        batch_full: Notify::new(),
        batch_size: batch_size.max(1),
        dropped: AtomicU64::new(0),
        success_sample: AtomicU64::new(1.0f64.to_bits()),
    });
    let (flush_tx, mut flush_rx) = mpsc::channel::<oneshot::Sender<()>>(16);
    let writer = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(flush_every.max(Duration::from_millis(10)));
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        let mut counters = tokio::time::interval(COUNTER_FLUSH);
        loop {
            tokio::select! {
                request = flush_rx.recv() => match request {
                    Some(done) => {
                        write_pending(&store, &writer, true).await;
                        let _ = done.send(());
                    }
                    None => {
                        // Every handle is gone: write what is left and stop.
                        write_pending(&store, &writer, true).await;
                        return;
                    }
                },
                _ = tick.tick() => write_pending(&store, &writer, false).await,
                _ = counters.tick() => write_pending(&store, &writer, true).await,
                _ = writer.batch_full.notified() => write_pending(&store, &writer, false).await,
                _ = prune.tick() => {
                    let cutoff = rows::now_ms() - i64::from(retention.log_days) * 86_400_000;
                    if let Err(err) = rows::delete_requests_before(&store, cutoff).await {
                        tracing::warn!("store: pruning old request rows failed: {err}");
                    }
                    if let Err(err) = log_query::delete_errors_before(&store, cutoff).await {
                        tracing::warn!("store: pruning old error rows failed: {err}");
                    }
                    let cutoff = rows::now_ms() - i64::from(retention.usage_days) * 86_400_000;
                    if let Err(err) = usage::delete_usage_before(&store, cutoff).await {
                        tracing::warn!("store: pruning old usage failed: {err}");
                    }
                    let cutoff = rows::now_ms() - i64::from(retention.minute_days) * 86_400_000;
                    if let Err(err) = minutes::delete_minutes_before(&store, cutoff).await {
                        tracing::warn!("store: pruning old request rollups failed: {err}");
                    }
                }
            }
        }
    });
    StoreHandle { shared: Some(shared), flush: Some(flush_tx) }
}

async fn write_pending(store: &Store, shared: &Shared, with_counters: bool) {
    let (keys, requests, errors, usage, minutes) = {
        let mut pending = lock(&shared.pending);
        let mut keys = std::mem::take(&mut pending.keys);
        if with_counters {
            keys.extend(pending.counters.drain());
        } else {
            for fingerprint in keys.keys() {
                pending.counters.remove(fingerprint);
            }
        }
        let (usage, minutes) = (std::mem::take(&mut pending.usage), std::mem::take(&mut pending.minutes));
        (keys, std::mem::take(&mut pending.requests), std::mem::take(&mut pending.errors), usage, minutes)
    };
    let states = keys.iter().map(|(fingerprint, slot)| (*fingerprint, slot.snapshot())).collect::<HashMap<_, _>>();
    if !states.is_empty()
        && let Err(err) = rows::save_key_states(store, &states).await
    {
        tracing::warn!("store: saving key state failed, will retry: {err}");
        // Put them back unless a newer state arrived meanwhile.
        let mut pending = lock(&shared.pending);
        for (fingerprint, slot) in keys {
            pending.keys.entry(fingerprint).or_insert(slot);
        }
    }
    for batch in requests.chunks(shared.batch_size) {
        if let Err(err) = rows::insert_requests(store, batch).await {
            tracing::warn!(rows = batch.len(), "store: writing request log failed, rows dropped: {err}");
        }
    }
    if let Err(err) = log_query::insert_errors(store, &errors).await {
        tracing::warn!(rows = errors.len(), "store: writing error log failed, rows dropped: {err}");
    }
    if !usage.is_empty()
        && let Err(err) = usage::add_usage(store, &usage).await
    {
        tracing::warn!("store: adding usage failed, will retry: {err}");
        let mut pending = lock(&shared.pending);
        for (key, totals) in usage {
            *pending.usage.entry(key).or_default() += totals;
        }
    }
    if !minutes.is_empty()
        && let Err(err) = minutes::add_minutes(store, &minutes).await
    {
        tracing::warn!("store: adding request rollups failed, will retry: {err}");
        let mut pending = lock(&shared.pending);
        for (key, totals) in minutes {
            *pending.minutes.entry(key).or_default() += totals;
        }
    }
}
