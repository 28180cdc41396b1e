//! What a failed attempt means for its key: the policy's decision (the
//! built-in policy when a script fails) and the event told to the key's actor.

use super::AttemptFailure;
use super::ledger::Ledger;
use crate::key_state::CooldownEntry;
use crate::policy::{CooldownScope, Decision, Outcome, SharedPolicy};
use crate::pool::{KeyEvent, Lease};
use std::time::{Duration, SystemTime};

/// Asks the policy about a failed attempt; `bytes_sent` reached the client.
pub(super) fn decide(
    policy: &SharedPolicy,
    ledger: &Ledger,
    lease: &Lease,
    failure: &AttemptFailure,
    bytes_sent: u64,
) -> Decision {
    let slot = lease.slot();
    let (consecutive_failures, recent_failures) = slot.failure_counts();
    let outcome = Outcome {
        kind: failure.kind.clone(),
        http_status: failure.google.http_status,
        google_status: failure.google.status.clone(),
        reason: failure.google.reason.clone(),
        quota_id: failure.google.quota_id().map(String::from),
        retry_delay: failure.google.retry_delay,
        model: ledger.model.clone(),
        attempt: ledger.attempts,
        elapsed: ledger.elapsed(),
        bytes_sent,
        streaming: ledger.mode != super::StreamMode::Whole,
        key_group: slot.record.group.clone(),
        key_fingerprint: slot.record.fingerprint,
        recent_failures: recent_failures + 1,
        consecutive_failures: consecutive_failures + 1,
    };
    policy.load().decide(&outcome)
}

/// The event told to the key's actor about a failed attempt.
pub(super) fn failed_event(failure: &AttemptFailure, decision: &Decision, latency: Duration) -> KeyEvent {
    let now = SystemTime::now();
    KeyEvent::Failed {
        latency,
        charge: decision.charge_key,
        error: super::summarize(failure),
        cooldown: decision.cooldown.as_ref().map(|c| CooldownEntry {
            model: match &c.scope {
                CooldownScope::Model(m) => Some(m.clone()),
                CooldownScope::AllModels => None,
            },
            until: now + c.duration,
            reason: failure.kind.as_str().to_string(),
            source: c.source,
        }),
        disable: decision.disable,
    }
}
