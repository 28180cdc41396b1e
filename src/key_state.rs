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
    /// Where its length came from.
    pub source: RestSource,
}

/// Where a rest's length came from, for the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RestSource {
    /// Google's `RetryInfo.retryDelay`.
    RetryDelay,
    /// A daily quota: until midnight Pacific.
    DailyQuota,
    /// gemgate's configured rest (`[cooldown]`) or its failure streak rule.
    #[default]
    Configured,
    /// The operator's policy script.
    Script,
}

impl RestSource {
    /// Stable name for the store and the admin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryDelay => "retry_delay",
            Self::DailyQuota => "daily_quota",
            Self::Configured => "configured",
            Self::Script => "script",
        }
    }

    /// Parses the stored name (an unknown one, or none from an older
    /// store, is `Configured`).
    pub fn parse(text: &str) -> Self {
        match text {
            "retry_delay" => Self::RetryDelay,
            "daily_quota" => Self::DailyQuota,
            "script" => Self::Script,
            _ => Self::Configured,
        }
    }
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
    /// When an attempt last failed by the key's fault (since the process
    /// started; not persisted).
    pub last_failure: Option<SystemTime>,
    /// The last failure, in words (never with the key).
    pub last_error: Option<String>,
    /// Sum of attempt latencies, for the mean.
    pub latency_ms_total: u64,
    /// Tokens served (`usageMetadata.totalTokenCount`).
    pub tokens: u64,
    /// Recent outcomes (since the process started; not persisted).
    pub outcomes: Outcomes,
}

/// A key's recent outcomes: the last 64 attempts in order, and successes
/// and failures per five minutes over the last hour. Fixed size (about 120
/// bytes a key), so 10,000 keys keep their history in about a megabyte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// One bit per attempt, newest in bit 0; a set bit is a failure.
    pub failed_bits: u64,
    /// How many of the bits hold attempts (at most 64).
    pub count: u8,
    /// (successes, failures) per five-minute bucket; bucket `i` counts
    /// the five minutes numbered `newest - i` since the Unix epoch.
    pub buckets: [(u32, u32); Outcomes::BUCKETS],
    /// The newest bucket's number.
    pub newest: u64,
}

impl Outcomes {
    /// Buckets kept: an hour.
    pub const BUCKETS: usize = 12;
    /// One bucket's length.
    pub const BUCKET_SECS: u64 = 300;

    /// Counts one attempt at `now`.
    pub fn record(&mut self, failed: bool, now: SystemTime) {
        self.failed_bits = (self.failed_bits << 1) | u64::from(failed);
        self.count = self.count.saturating_add(1).min(64);
        self.advance(now);
        let bucket = &mut self.buckets[0];
        if failed { bucket.1 = bucket.1.saturating_add(1) } else { bucket.0 = bucket.0.saturating_add(1) }
    }

    /// The buckets as of `now`, oldest first: (start, successes, failures).
    pub fn hour(&self, now: SystemTime) -> Vec<(SystemTime, u32, u32)> {
        let mut moved = *self;
        moved.advance(now);
        (0..Self::BUCKETS)
            .rev()
            .map(|i| {
                let start = moved.newest.saturating_sub(i as u64) * Self::BUCKET_SECS;
                let (ok, failed) = moved.buckets[i];
                (std::time::UNIX_EPOCH + std::time::Duration::from_secs(start), ok, failed)
            })
            .collect()
    }

    /// The last attempts, oldest first: true for a failure.
    pub fn last(&self) -> Vec<bool> {
        (0..self.count).rev().map(|i| self.failed_bits >> i & 1 == 1).collect()
    }

    /// Moves the buckets on to the five minutes holding `now`.
    fn advance(&mut self, now: SystemTime) {
        let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let current = secs / Self::BUCKET_SECS;
        if current <= self.newest {
            return;
        }
        let shift = usize::try_from(current - self.newest).unwrap_or(Self::BUCKETS).min(Self::BUCKETS);
        self.buckets.rotate_right(shift);
        self.buckets[..shift].fill((0, 0));
        self.newest = current;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn outcomes_keep_the_last_attempts_and_an_hour_of_buckets() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000 * Outcomes::BUCKET_SECS);
        let mut outcomes = Outcomes::default();
        outcomes.record(false, start);
        outcomes.record(true, start + Duration::from_secs(10));
        outcomes.record(false, start + Duration::from_secs(Outcomes::BUCKET_SECS * 2));
        assert_eq!(outcomes.last(), vec![false, true, false]);
        let hour = outcomes.hour(start + Duration::from_secs(Outcomes::BUCKET_SECS * 2));
        assert_eq!(hour.len(), Outcomes::BUCKETS);
        assert_eq!((hour[Outcomes::BUCKETS - 1].1, hour[Outcomes::BUCKETS - 1].2), (1, 0));
        assert_eq!((hour[Outcomes::BUCKETS - 3].1, hour[Outcomes::BUCKETS - 3].2), (1, 1));
        assert_eq!(hour[Outcomes::BUCKETS - 3].0, start);
        // An hour later every bucket has moved out; the last attempts stay.
        let later = outcomes.hour(start + Duration::from_secs(Outcomes::BUCKET_SECS * 20));
        assert!(later.iter().all(|&(_, ok, failed)| ok == 0 && failed == 0));
        for _ in 0..70 {
            outcomes.record(true, start);
        }
        assert_eq!(outcomes.last().len(), 64);
        assert!(outcomes.last().iter().all(|&failed| failed));
    }
}
