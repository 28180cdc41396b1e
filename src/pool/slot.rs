//! What the rest of the service may read about a key: its record, counters
//! and state. Only the key's KeyActor writes them: counters as atomics (no
//! allocation per request), state through an `ArcSwap` when it changes.

use crate::keys::KeyRecord;
use crate::policy::DisableReason;
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

/// The parts of a key's state that change rarely.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Set while the key is disabled.
    pub disabled: Option<Disabled>,
    /// Rests still running (or ended but not yet cleared by the timer).
    pub cooldowns: Vec<CooldownEntry>,
    /// The last failure, in words (never with the key).
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct KeyCounters {
    requests: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU32,
    recent_failures: AtomicU32,
    last_used_ms: AtomicU64,
    latency_ms_total: AtomicU64,
    tokens: AtomicU64,
}

/// A rest of one key, for one model or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CooldownEntry {
    /// The model, or `None` for every model.
    pub model: Option<Arc<str>>,
    /// When it ends.
    pub until: SystemTime,
    /// Why (the failure kind that caused it).
    pub reason: String,
}

/// Disabled: why and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disabled {
    /// Why.
    pub reason: DisableReason,
    /// Since when.
    pub since: SystemTime,
}

/// A key's state and counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySnapshot {
    /// Set while the key is disabled.
    pub disabled: Option<Disabled>,
    /// Rests still running (or ended but not yet cleared by the timer).
    pub cooldowns: Vec<CooldownEntry>,
    /// Attempts made with the key.
    pub requests: u64,
    /// Attempts that succeeded.
    pub successes: u64,
    /// Attempts charged to the key as failures.
    pub failures: u64,
    /// Failures in a row, reset by a success.
    pub consecutive_failures: u32,
    /// Failures in the last ten minutes.
    pub recent_failures: u32,
    /// When the key last finished an attempt.
    pub last_used: Option<SystemTime>,
    /// The last failure, in words (never with the key).
    pub last_error: Option<String>,
    /// Sum of attempt latencies, for the mean.
    pub latency_ms_total: u64,
    /// Tokens served (`usageMetadata.totalTokenCount`).
    pub tokens: u64,
}

/// What a key can do at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyStatus {
    /// Serving.
    Active,
    /// Resting on some models (a quota for one model); serves the others.
    Partial,
    /// Resting on every model; frees up by itself.
    Cooling,
    /// Taken out of service.
    Disabled,
}

/// Keys in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Serving.
    pub active: u64,
    /// Resting on some models, serving the others.
    pub partial: u64,
    /// Resting on every model.
    pub cooling: u64,
    /// Out of service.
    pub disabled: u64,
}

impl StatusCounts {
    /// Counts one key.
    pub fn add(&mut self, status: KeyStatus) {
        match status {
            KeyStatus::Active => self.active += 1,
            KeyStatus::Partial => self.partial += 1,
            KeyStatus::Cooling => self.cooling += 1,
            KeyStatus::Disabled => self.disabled += 1,
        }
    }

    /// The statuses of `slots` at `now`.
    pub fn of(slots: &[Arc<KeySlot>], now: SystemTime) -> Self {
        let mut counts = Self::default();
        for slot in slots {
            counts.add(slot.snapshot().status(now));
        }
        counts
    }
}

impl KeySnapshot {
    /// The key's status at `now`: disabled wins over a rest on every model,
    /// which wins over a rest on some.
    pub fn status(&self, now: SystemTime) -> KeyStatus {
        if self.disabled.is_some() {
            KeyStatus::Disabled
        } else if self.active_cooldowns(now).any(|c| c.model.is_none()) {
            KeyStatus::Cooling
        } else if self.active_cooldowns(now).next().is_some() {
            KeyStatus::Partial
        } else {
            KeyStatus::Active
        }
    }

    /// The rests that have not ended at `now`.
    pub fn active_cooldowns(&self, now: SystemTime) -> impl Iterator<Item = &CooldownEntry> {
        self.cooldowns.iter().filter(move |c| c.until > now)
    }

    /// Whether the key is cooling for `model` (or all models) at `now`.
    pub fn is_cooling_for(&self, model: &str, now: SystemTime) -> bool {
        self.active_cooldowns(now).any(|c| c.model.as_deref().is_none_or(|m| m == model))
    }

    /// The rarely changing part.
    pub fn state(&self) -> KeyState {
        KeyState { disabled: self.disabled, cooldowns: self.cooldowns.clone(), last_error: self.last_error.clone() }
    }
}

fn to_ms(time: Option<SystemTime>) -> u64 {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64)
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
            latency_ms_total: c.latency_ms_total.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
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
        c.latency_ms_total.store(s.latency_ms_total, Ordering::Relaxed);
        c.tokens.store(s.tokens, Ordering::Relaxed);
    }

    /// Publishes state (KeyActor only).
    pub(super) fn store_state(&self, state: KeyState) {
        self.state.store(Arc::new(state));
    }
}
