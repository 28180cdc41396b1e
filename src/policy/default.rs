//! The built-in policy: the behaviour gemgate has without any script, and the
//! fallback when a script fails.

use super::{Cooldown, CooldownScope, Decision, NextStep, Outcome, Policy, next_pacific_midnight};
use crate::config::{CooldownConfig, RetryConfig};
use crate::key_state::{DisableReason, RestSource};
use crate::upstream::FailureKind;
use std::time::{Duration, SystemTime};

/// Sensible failover: rest a (key, model) after a 429 for as long as Google
/// asks, until midnight Pacific for a daily quota; disable dead keys; move on
/// from 5xx and timeouts; hand the client its own mistakes at once.
#[derive(Clone, Debug)]
pub struct DefaultPolicy {
    cooldown: CooldownConfig,
    overload_backoff: Duration,
    empty_reply_retries: u32,
}

impl DefaultPolicy {
    /// A default policy with the configured cooldowns and backoff.
    pub fn new(cooldown: &CooldownConfig, retry: &RetryConfig) -> Self {
        Self {
            cooldown: cooldown.clone(),
            overload_backoff: Duration::from_millis(retry.overload_backoff_ms),
            empty_reply_retries: retry.empty_reply_retries,
        }
    }

    fn rate_limit_cooldown(&self, outcome: &Outcome, daily: bool) -> Cooldown {
        let scope = CooldownScope::Model(outcome.model.clone());
        if daily {
            let now = SystemTime::now();
            let duration = next_pacific_midnight(now).duration_since(now).unwrap_or_default();
            return Cooldown { scope, duration, source: RestSource::DailyQuota };
        }
        match outcome.retry_delay.filter(|d| !d.is_zero()) {
            Some(duration) => Cooldown { scope, duration, source: RestSource::RetryDelay },
            None => Cooldown {
                scope,
                duration: Duration::from_secs(self.cooldown.rate_limit_secs),
                source: RestSource::Configured,
            },
        }
    }

    /// Too many failures in a row rest the key on every model for a while.
    fn failure_streak_cooldown(&self, outcome: &Outcome) -> Option<Cooldown> {
        let threshold = self.cooldown.failure_threshold;
        (threshold > 0 && outcome.consecutive_failures >= threshold).then(|| Cooldown {
            scope: CooldownScope::AllModels,
            duration: Duration::from_secs(self.cooldown.failure_secs),
            source: RestSource::Configured,
        })
    }
}

impl Policy for DefaultPolicy {
    fn checks_empty_replies(&self) -> bool {
        self.empty_reply_retries > 0
    }

    /// Empty replies are retried on another key `retry.empty_reply_retries` times.
    fn on_empty_reply(&self, reply: &super::EmptyReply) -> bool {
        reply.empty_retries < self.empty_reply_retries
    }

    fn decide(&self, outcome: &Outcome) -> Decision {
        let retry_now =
            if outcome.bytes_sent > 0 { NextStep::Fail } else { NextStep::RetryOtherKey { after: Duration::ZERO } };
        match &outcome.kind {
            FailureKind::RateLimited { daily } => Decision {
                next: retry_now,
                cooldown: Some(self.rate_limit_cooldown(outcome, *daily)),
                disable: None,
                charge_key: true,
            },
            FailureKind::KeyInvalid => {
                Decision { next: retry_now, cooldown: None, disable: Some(DisableReason::Invalid), charge_key: true }
            }
            FailureKind::KeyDenied => Decision {
                next: retry_now,
                cooldown: None,
                disable: Some(DisableReason::PermissionDenied),
                charge_key: true,
            },
            FailureKind::KeyPrecondition => Decision {
                next: retry_now,
                cooldown: Some(Cooldown {
                    scope: CooldownScope::AllModels,
                    duration: Duration::from_secs(self.cooldown.precondition_secs),
                    source: RestSource::Configured,
                }),
                disable: None,
                charge_key: true,
            },
            FailureKind::ClientFault => {
                Decision { next: NextStep::Fail, cooldown: None, disable: None, charge_key: false }
            }
            FailureKind::Overloaded => {
                // Other keys hit the same overloaded model: back off, growing per attempt.
                let after = self.overload_backoff * outcome.attempt.min(8);
                let next = if outcome.bytes_sent > 0 { NextStep::Fail } else { NextStep::RetryOtherKey { after } };
                Decision { next, cooldown: None, disable: None, charge_key: true }
            }
            // The proxy or relay failed, not the key: the next key may leave another way.
            FailureKind::Egress => Decision { next: retry_now, cooldown: None, disable: None, charge_key: false },
            FailureKind::ServerError | FailureKind::Timeout | FailureKind::Network | FailureKind::StreamCut => {
                Decision {
                    next: retry_now,
                    cooldown: self.failure_streak_cooldown(outcome),
                    disable: None,
                    charge_key: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Fingerprint;
    use std::sync::Arc;

    fn outcome(kind: FailureKind) -> Outcome {
        Outcome {
            kind,
            http_status: 0,
            google_status: String::new(),
            reason: None,
            quota_id: None,
            retry_delay: None,
            model: Arc::from("gemini-2.5-pro"),
            attempt: 1,
            elapsed: Duration::ZERO,
            bytes_sent: 0,
            streaming: false,
            key_group: Arc::from("default"),
            key_fingerprint: Fingerprint::of("x"),
            recent_failures: 1,
            consecutive_failures: 1,
        }
    }

    fn policy() -> DefaultPolicy {
        DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default())
    }

    #[test]
    fn rate_limit_cools_only_that_model_for_the_retry_delay() {
        let mut o = outcome(FailureKind::RateLimited { daily: false });
        o.retry_delay = Some(Duration::from_secs(37));
        let d = policy().decide(&o);
        assert_eq!(d.next, NextStep::RetryOtherKey { after: Duration::ZERO });
        assert_eq!(
            d.cooldown,
            Some(Cooldown {
                scope: CooldownScope::Model(Arc::from("gemini-2.5-pro")),
                duration: Duration::from_secs(37),
                source: RestSource::RetryDelay,
            })
        );
        o.retry_delay = None;
        let configured = policy().decide(&o).cooldown.unwrap();
        assert_eq!((configured.duration, configured.source), (Duration::from_secs(60), RestSource::Configured));
        let daily = policy().decide(&outcome(FailureKind::RateLimited { daily: true })).cooldown.unwrap();
        assert_eq!(daily.source, RestSource::DailyQuota);
    }

    #[test]
    fn daily_quota_cools_until_pacific_midnight() {
        let d = policy().decide(&outcome(FailureKind::RateLimited { daily: true }));
        let duration = d.cooldown.unwrap().duration;
        assert!(duration > Duration::ZERO && duration <= Duration::from_secs(25 * 3600), "{duration:?}");
    }

    #[test]
    fn dead_keys_are_disabled_and_client_faults_are_not_charged() {
        assert_eq!(policy().decide(&outcome(FailureKind::KeyInvalid)).disable, Some(DisableReason::Invalid));
        assert_eq!(policy().decide(&outcome(FailureKind::KeyDenied)).disable, Some(DisableReason::PermissionDenied));
        let client = policy().decide(&outcome(FailureKind::ClientFault));
        assert_eq!(client, Decision { next: NextStep::Fail, cooldown: None, disable: None, charge_key: false });
    }

    #[test]
    fn failure_streak_rests_the_key_and_bytes_sent_forbid_retry() {
        let mut o = outcome(FailureKind::ServerError);
        assert_eq!(policy().decide(&o).cooldown, None);
        o.consecutive_failures = 5;
        assert_eq!(policy().decide(&o).cooldown.unwrap().scope, CooldownScope::AllModels);
        o.bytes_sent = 10;
        assert_eq!(policy().decide(&o).next, NextStep::Fail);
    }

    #[test]
    fn overload_backs_off_more_each_attempt() {
        let mut o = outcome(FailureKind::Overloaded);
        o.attempt = 3;
        assert_eq!(policy().decide(&o).next, NextStep::RetryOtherKey { after: Duration::from_millis(600) });
    }
}
