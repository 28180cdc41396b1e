//! What the keys a request tried said about themselves: failures that belong
//! to a key (dead, suspended, region, its quota) rather than to the request.
//! They move the request on to another key without spending its attempt
//! budget, and when no key is left they are the truth the client is told,
//! instead of one key's private error dressed as the client's fault.

use crate::upstream::FailureKind;
use std::time::SystemTime;

/// Key-level failures of one request, counted by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFailures {
    counts: Vec<(&'static str, u32)>,
    /// When the soonest key this request rested (a 429) frees up again.
    pub soonest_rest: Option<SystemTime>,
}

impl KeyFailures {
    /// Counts a key-level failure; `rest_until` is when the policy rests that key for this model.
    pub fn record(&mut self, kind: &FailureKind, rest_until: Option<SystemTime>) {
        let name = human_name(kind);
        match self.counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((name, 1)),
        }
        if matches!(kind, FailureKind::RateLimited { .. })
            && let Some(until) = rest_until
        {
            self.soonest_rest = Some(self.soonest_rest.map_or(until, |soonest| soonest.min(until)));
        }
    }

    /// How many key-level failures the request met.
    pub fn total(&self) -> u32 {
        self.counts.iter().map(|(_, count)| count).sum()
    }

    /// `"3 invalid, 1 out of its daily quota"`, or empty.
    pub fn describe(&self) -> String {
        self.counts.iter().map(|(name, count)| format!("{count} {name}")).collect::<Vec<_>>().join(", ")
    }
}

/// Whether a failure belongs to the key, not to the request or to Google at large.
pub fn is_keys_own(kind: &FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::RateLimited { .. }
            | FailureKind::KeyInvalid
            | FailureKind::KeyDenied
            | FailureKind::KeyPrecondition
    )
}

fn human_name(kind: &FailureKind) -> &'static str {
    match kind {
        FailureKind::RateLimited { daily: false } => "rate-limited",
        FailureKind::RateLimited { daily: true } => "out of its daily quota",
        FailureKind::KeyInvalid => "invalid",
        FailureKind::KeyDenied => "suspended or denied",
        FailureKind::KeyPrecondition => "refused for its region or billing",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_by_kind_and_keeps_the_soonest_rest() {
        let now = SystemTime::now();
        let mut failures = KeyFailures::default();
        failures.record(&FailureKind::KeyInvalid, None);
        failures.record(&FailureKind::KeyInvalid, None);
        failures.record(&FailureKind::RateLimited { daily: false }, Some(now + Duration::from_secs(30)));
        failures.record(&FailureKind::RateLimited { daily: true }, Some(now + Duration::from_secs(9000)));
        assert_eq!(failures.total(), 4);
        assert_eq!(failures.describe(), "2 invalid, 1 rate-limited, 1 out of its daily quota");
        assert_eq!(failures.soonest_rest, Some(now + Duration::from_secs(30)));
        assert!(is_keys_own(&FailureKind::KeyPrecondition) && !is_keys_own(&FailureKind::Overloaded));
    }
}
