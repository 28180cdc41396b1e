//! What the rest of the service may read about a key: its record and the
//! snapshot its KeyActor publishes after every change. Only the KeyActor
//! writes the snapshot.

use crate::keys::KeyRecord;
use crate::policy::DisableReason;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::SystemTime;

use super::ready_index::SlotIndex;

/// One key of the pool, shared between the supervisor, its KeyActor, leases
/// and status readers.
#[derive(Debug)]
pub struct KeySlot {
    /// Position in the supervisor's slot table.
    pub index: SlotIndex,
    /// The key, its fingerprint and group.
    pub record: KeyRecord,
    /// The latest state published by the key's actor.
    pub snapshot: ArcSwap<KeySnapshot>,
}

impl KeySlot {
    /// The current published state.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot.load_full()
    }
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

/// A key's state and counters as of its actor's last change.
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

impl KeySnapshot {
    /// The rests that have not ended at `now`.
    pub fn active_cooldowns(&self, now: SystemTime) -> impl Iterator<Item = &CooldownEntry> {
        self.cooldowns.iter().filter(move |c| c.until > now)
    }

    /// Whether the key is cooling for `model` (or all models) at `now`.
    pub fn is_cooling_for(&self, model: &str, now: SystemTime) -> bool {
        self.active_cooldowns(now).any(|c| c.model.as_deref().is_none_or(|m| m == model))
    }
}
