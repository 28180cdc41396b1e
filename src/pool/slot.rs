//! What the rest of the service may read about a key: its record, counters
//! and state. Only the key's KeyActor writes them: counters as atomics (no
//! allocation per request), state through an `ArcSwap` when it changes.

use crate::key_state::{Disabled, KeySnapshot, KeyState};
use crate::keys::KeyRecord;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ready_index::SlotIndex;

/// One key of the pool, shared between the supervisor, its KeyActor, leases,
/// the store writer and status readers.
#[derive(Debug)]
pub struct KeySlot {
    /// Position in the supervisor's slot table.
    pub index: SlotIndex,
    /// The key, its fingerprint and group.
    pub record: KeyRecord,
    state: ArcSwap<KeyState>,
    counters: KeyCounters,
}

#[derive(Debug, Default)]
struct KeyCounters {
    requests: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU32,
    recent_failures: AtomicU32,
    last_used_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    latency_ms_total: AtomicU64,
    tokens: AtomicU64,
    /// Written by the actor once per attempt, read by the admin.
    outcomes: std::sync::Mutex<crate::key_state::Outcomes>,
}

fn to_ms(time: Option<SystemTime>) -> u64 {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64)
}

impl crate::store::SavedKey for KeySlot {
    fn fingerprint(&self) -> crate::keys::Fingerprint {
        self.record.fingerprint
    }

    fn snapshot(&self) -> KeySnapshot {
        KeySlot::snapshot(self)
    }
}

impl KeySlot {
    /// A slot starting from `snapshot` (persisted state, or default).
    pub fn new(index: SlotIndex, record: KeyRecord, snapshot: &KeySnapshot) -> Self {
        let slot =
            Self { index, record, state: ArcSwap::from_pointee(snapshot.state()), counters: KeyCounters::default() };
        slot.store_counters(snapshot);
        slot
    }

    /// The key's state and counters now.
    pub fn snapshot(&self) -> KeySnapshot {
        let state = self.state.load();
        let c = &self.counters;
        let last_used_ms = c.last_used_ms.load(Ordering::Relaxed);
        let last_failure_ms = c.last_failure_ms.load(Ordering::Relaxed);
        KeySnapshot {
            disabled: state.disabled,
            cooldowns: state.cooldowns.clone(),
            last_error: state.last_error.clone(),
            requests: c.requests.load(Ordering::Relaxed),
            successes: c.successes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            consecutive_failures: c.consecutive_failures.load(Ordering::Relaxed),
            recent_failures: c.recent_failures.load(Ordering::Relaxed),
            last_used: (last_used_ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(last_used_ms)),
            last_failure: (last_failure_ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(last_failure_ms)),
            latency_ms_total: c.latency_ms_total.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            outcomes: *c.outcomes.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Whether the key is disabled now.
    pub fn disabled(&self) -> Option<Disabled> {
        self.state.load().disabled
    }

    /// Failures in a row and in the recent window, for policy context.
    pub fn failure_counts(&self) -> (u32, u32) {
        let c = &self.counters;
        (c.consecutive_failures.load(Ordering::Relaxed), c.recent_failures.load(Ordering::Relaxed))
    }

    /// Publishes counters (KeyActor only).
    pub(super) fn store_counters(&self, s: &KeySnapshot) {
        let c = &self.counters;
        c.requests.store(s.requests, Ordering::Relaxed);
        c.successes.store(s.successes, Ordering::Relaxed);
        c.failures.store(s.failures, Ordering::Relaxed);
        c.consecutive_failures.store(s.consecutive_failures, Ordering::Relaxed);
        c.recent_failures.store(s.recent_failures, Ordering::Relaxed);
        c.last_used_ms.store(to_ms(s.last_used), Ordering::Relaxed);
        c.last_failure_ms.store(to_ms(s.last_failure), Ordering::Relaxed);
        c.latency_ms_total.store(s.latency_ms_total, Ordering::Relaxed);
        c.tokens.store(s.tokens, Ordering::Relaxed);
        *c.outcomes.lock().unwrap_or_else(|e| e.into_inner()) = s.outcomes;
    }

    /// Publishes state (KeyActor only).
    pub(super) fn store_state(&self, state: KeyState) {
        self.state.store(Arc::new(state));
    }
}
