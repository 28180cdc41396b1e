//! A key's state as every layer sees it: disabled or not and why, rests per
//! model, counters, status. Plain data with no I/O, importing nothing else
//! from the crate, so the pool (which alone changes it), the store (which
//! persists it), the policy, the upstream's scans and the admin all share it
//! without depending on one another.

use std::sync::Arc;
use std::time::SystemTime;

/// Why a key is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisableReason {
    /// Google said the key is not valid.
    Invalid,
    /// Google refused the key (suspended, leaked, API not enabled).
    PermissionDenied,
    /// An operator disabled it; only an operator re-enables it.
    Manual,
    /// A policy script disabled it for its own reason.
    Policy,
}

impl DisableReason {
    /// Stable name for the store and the admin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::PermissionDenied => "permission_denied",
            Self::Manual => "manual",
            Self::Policy => "policy",
        }
    }

    /// Whether a health scan that finds the key alive ends this disable.
    /// Only Google's verdicts (invalid, refused) are overturned by a scan; an
    /// operator's or a policy's disable lasts until an operator enables the key.
    pub fn ends_on_scan(self) -> bool {
        matches!(self, Self::Invalid | Self::PermissionDenied)
    }

    /// How the disable ends, for the admin: `scan` or `operator`.
    pub fn ends(self) -> &'static str {
        if self.ends_on_scan() { "scan" } else { "operator" }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "invalid" => Self::Invalid,
            "permission_denied" => Self::PermissionDenied,
            "manual" => Self::Manual,
            "policy" => Self::Policy,
            _ => return None,
        })
    }
}

/// What a health scan found about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanVerdict {
    /// The key answered a cheap call.
    Alive,
    /// The key failed in a way that says it is dead.
    Dead(DisableReason),
    /// Inconclusive (rate limited, network trouble): leave the key as it is.
    Unknown,
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

    /// The statuses of `keys` at `now`.
    pub fn of(keys: impl IntoIterator<Item = KeySnapshot>, now: SystemTime) -> Self {
        let mut counts = Self::default();
        for key in keys {
            counts.add(key.status(now));
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
