//! What an operator allows each client, and the counters that hold it to
//! that: requests per minute (a sliding minute), requests per day (to
//! midnight in the configured zone), tokens per minute (estimated from the
//! request's size at admission, settled from `usageMetadata` when it ends),
//! the models it may use (exact names and `*` wildcards), expiry and disable. Checked once per client request before anything goes
//! upstream; the check and the count are one step under one lock, so limits
//! hold exactly under concurrency. Pure: callers pass `now`.

use chrono_tz::Tz;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wildmatch::WildMatch;

/// One client's limits (a client without any has no rules at all).
#[derive(Debug)]
pub struct ClientRules {
    /// Requests per minute (0: no limit).
    pub rpm: u32,
    /// Requests per day (0: no limit).
    pub rpd: u32,
    /// Tokens per minute (0: no limit).
    pub tpm: u64,
    /// Models it may use, exact or with `*` (empty: every model).
    models: Vec<WildMatch>,
    /// When the key stops working.
    pub expires: Option<SystemTime>,
    /// Disabled by the operator.
    pub disabled: bool,
}

/// What an operator set on a client key.
#[derive(Clone, Debug, Default)]
pub struct ClientTerms<'a> {
    /// Requests per minute (0: no limit).
    pub rpm: i64,
    /// Requests per day (0: no limit).
    pub rpd: i64,
    /// Tokens per minute (0: no limit).
    pub tpm: i64,
    /// Allowed models, exact or with `*` (empty: all).
    pub models: &'a [String],
    /// Unix milliseconds after which the key stops working.
    pub expires_ms: Option<i64>,
    /// Disabled by the operator.
    pub disabled: bool,
}

impl ClientRules {
    /// Rules from an operator's terms; `None` when they limit nothing.
    pub fn new(terms: &ClientTerms<'_>) -> Option<Self> {
        let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        let expires = terms.expires_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
        let rules = Self {
            rpm: clamp(terms.rpm),
            rpd: clamp(terms.rpd),
            tpm: terms.tpm.max(0) as u64,
            models: terms.models.iter().map(|m| WildMatch::new(m)).collect(),
            expires,
            disabled: terms.disabled,
        };
        let limits = rules.rpm > 0 || rules.rpd > 0 || rules.tpm > 0 || !rules.models.is_empty();
        (limits || rules.expires.is_some() || rules.disabled).then_some(rules)
    }

    /// Whether `model` is allowed (a call that names no model, such as
    /// listing models, always is).
    pub fn allows(&self, model: &str) -> bool {
        let model = model.trim_start_matches("models/");
        model.is_empty() || self.models.is_empty() || self.models.iter().any(|pattern| pattern.matches(model))
    }
}

/// Why a client's request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The operator disabled the key.
    Disabled,
    /// The key expired at this time.
    Expired(SystemTime),
    /// The model is not among those the client may use.
    ModelNotAllowed,
    /// A request limit is used up until `until`.
    Limit {
        /// `rpm`, `rpd` or `tpm`.
        limit: &'static str,
        /// The limit's value.
        allowed: u64,
        /// When a request fits again.
        until: SystemTime,
    },
}

/// A request's tokens: its estimate at admission, replaced by its real
/// count (`usageMetadata.totalTokenCount`) when it ends.
pub type TokenTally = Arc<AtomicU64>;

#[derive(Default)]
struct Counter {
    minute: VecDeque<SystemTime>,
    day_count: u32,
    day_ends: Option<SystemTime>,
    tokens: VecDeque<(SystemTime, TokenTally)>,
}

/// Requests counted per client, against its rules.
pub struct ClientCounters {
    state: Mutex<Counters>,
}

struct Counters {
    zone: Tz,
    by_client: HashMap<Arc<str>, Counter>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl ClientCounters {
    /// Counters whose days end at midnight in `zone`.
    pub fn new(zone: Tz) -> Self {
        Self { state: Mutex::new(Counters { zone, by_client: HashMap::new() }) }
    }

    /// Days end at midnight in `zone` from now on (a day already counted
    /// keeps its end).
    pub fn set_zone(&self, zone: Tz) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).zone = zone;
    }

    /// Admits one request of `client` for `model` at `now` and counts it, or
    /// refuses it (and counts nothing). Under a token limit, the request's
    /// tally starts at `estimate` and is returned for settling; a minute's
    /// requests are admitted while its tokens (settled, or estimated for
    /// those in flight) are under the limit.
    pub fn admit(
        &self,
        client: &Arc<str>,
        rules: &ClientRules,
        model: &str,
        estimate: u64,
        now: SystemTime,
    ) -> Result<Option<TokenTally>, Refusal> {
        if rules.disabled {
            return Err(Refusal::Disabled);
        }
        if let Some(expires) = rules.expires.filter(|&at| at <= now) {
            return Err(Refusal::Expired(expires));
        }
        if !rules.allows(model) {
            return Err(Refusal::ModelNotAllowed);
        }
        // Listing models generates nothing: no token limit on it.
        let tpm = if model.is_empty() { 0 } else { rules.tpm };
        if rules.rpm == 0 && rules.rpd == 0 && tpm == 0 {
            return Ok(None);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let zone = state.zone;
        let counter = state.by_client.entry(client.clone()).or_default();
        while counter.minute.front().is_some_and(|&at| at + MINUTE <= now) {
            counter.minute.pop_front();
        }
        if counter.day_ends.is_some_and(|end| end <= now) {
            counter.day_count = 0;
            counter.day_ends = None;
        }
        if rules.rpd > 0 && counter.day_count >= rules.rpd {
            let until = *counter.day_ends.get_or_insert_with(|| crate::midnight::next_midnight(zone, now));
            return Err(Refusal::Limit { limit: "rpd", allowed: rules.rpd.into(), until });
        }
        if rules.rpm > 0
            && counter.minute.len() >= rules.rpm as usize
            && let Some(&oldest) = counter.minute.front()
        {
            return Err(Refusal::Limit { limit: "rpm", allowed: rules.rpm.into(), until: oldest + MINUTE });
        }
        if tpm > 0 {
            while counter.tokens.front().is_some_and(|(at, _)| *at + MINUTE <= now) {
                counter.tokens.pop_front();
            }
            let used: u64 = counter.tokens.iter().map(|(_, tally)| tally.load(Ordering::Relaxed)).sum();
            if used >= tpm
                && let Some((oldest, _)) = counter.tokens.front()
            {
                return Err(Refusal::Limit { limit: "tpm", allowed: tpm, until: *oldest + MINUTE });
            }
        }
        if rules.rpm > 0 {
            counter.minute.push_back(now);
            // A lowered limit leaves older entries: keep no more than it needs.
            while counter.minute.len() > rules.rpm as usize {
                counter.minute.pop_front();
            }
        }
        if rules.rpd > 0 {
            counter.day_count += 1;
            counter.day_ends.get_or_insert_with(|| crate::midnight::next_midnight(zone, now));
        }
        if tpm == 0 {
            return Ok(None);
        }
        let tally = Arc::new(AtomicU64::new(estimate));
        counter.tokens.push_back((now, tally.clone()));
        Ok(Some(tally))
    }

    /// Forgets clients that no longer exist (revoked or deleted).
    pub fn retain(&self, alive: impl Fn(&str) -> bool) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).by_client.retain(|client, _| alive(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<str> {
        Arc::from("alice")
    }

    fn check(
        counters: &ClientCounters,
        rules: &ClientRules,
        model: &str,
        estimate: u64,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        counters.admit(&client(), rules, model, estimate, now).map(|_| ())
    }

    #[test]
    fn models_exact_and_wildcard() {
        let rules = ClientRules::new(&ClientTerms {
            models: &["gemini-2.5-pro".into(), "gemini-3-*".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(rules.allows("gemini-2.5-pro") && rules.allows("models/gemini-3-pro-preview"));
        assert!(!rules.allows("gemini-2.5-flash") && !rules.allows("gemini-2.5-pro-x"));
        assert!(rules.allows(""), "listing models names none");
        assert!(ClientRules::new(&ClientTerms::default()).is_none(), "no limits, no rules");
    }

    #[test]
    fn a_minute_slides_and_refusals_count_nothing() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let rules = ClientRules::new(&ClientTerms { rpm: 2, ..Default::default() }).unwrap();
        let t0 = SystemTime::now();
        assert_eq!(check(&counters, &rules, "m", 0, t0), Ok(()));
        assert_eq!(check(&counters, &rules, "m", 0, t0 + Duration::from_secs(10)), Ok(()));
        let refused = check(&counters, &rules, "m", 0, t0 + Duration::from_secs(20));
        assert_eq!(refused, Err(Refusal::Limit { limit: "rpm", allowed: 2, until: t0 + MINUTE }));
        assert_eq!(check(&counters, &rules, "m", 0, t0 + MINUTE), Ok(()));
        let refused = check(&counters, &rules, "m", 0, t0 + MINUTE);
        assert_eq!(refused, Err(Refusal::Limit { limit: "rpm", allowed: 2, until: t0 + Duration::from_secs(70) }));
    }

    #[test]
    fn a_day_ends_at_midnight_in_the_zone() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let counters = ClientCounters::new(zone);
        let rules = ClientRules::new(&ClientTerms { rpd: 1, ..Default::default() }).unwrap();
        let now = SystemTime::now();
        assert_eq!(check(&counters, &rules, "m", 0, now), Ok(()));
        let midnight = crate::midnight::next_midnight(zone, now);
        assert_eq!(
            check(&counters, &rules, "m", 0, now),
            Err(Refusal::Limit { limit: "rpd", allowed: 1, until: midnight })
        );
        assert_eq!(check(&counters, &rules, "m", 0, midnight), Ok(()));
    }

    #[test]
    fn a_model_not_allowed_is_refused_before_counting() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let models = ["gemini-2.5-pro".to_string()];
        let rules = ClientRules::new(&ClientTerms { rpm: 1, models: &models, ..Default::default() }).unwrap();
        let now = SystemTime::now();
        assert_eq!(check(&counters, &rules, "gemini-2.5-flash", 0, now), Err(Refusal::ModelNotAllowed));
        assert_eq!(check(&counters, &rules, "gemini-2.5-pro", 0, now), Ok(()));
    }

    #[test]
    fn tokens_per_minute_settle_from_usage() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let rules = ClientRules::new(&ClientTerms { tpm: 100, ..Default::default() }).unwrap();
        let t0 = SystemTime::now();
        let first = counters.admit(&client(), &rules, "m", 30, t0).unwrap().unwrap();
        let second = counters.admit(&client(), &rules, "m", 30, t0).unwrap().unwrap();
        // Both settle higher than estimated: the minute is used up.
        first.store(60, Ordering::Relaxed);
        second.store(50, Ordering::Relaxed);
        let refused = check(&counters, &rules, "m", 30, t0 + Duration::from_secs(1));
        assert_eq!(refused, Err(Refusal::Limit { limit: "tpm", allowed: 100, until: t0 + MINUTE }));
        // A failed request settles at 0 and frees its share.
        second.store(0, Ordering::Relaxed);
        assert!(check(&counters, &rules, "m", 30, t0 + Duration::from_secs(2)).is_ok());
        let listing = counters.admit(&client(), &rules, "", 0, t0 + Duration::from_secs(2));
        assert!(matches!(listing, Ok(None)), "listing is free");
        assert!(check(&counters, &rules, "m", 30, t0 + MINUTE + Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn disabled_and_expired_keys_are_refused() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let now = SystemTime::now();
        let disabled = ClientRules::new(&ClientTerms { disabled: true, ..Default::default() }).unwrap();
        assert_eq!(check(&counters, &disabled, "m", 0, now), Err(Refusal::Disabled));
        let ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let expiring = ClientRules::new(&ClientTerms { expires_ms: Some(ms + 1000), ..Default::default() }).unwrap();
        assert_eq!(check(&counters, &expiring, "m", 0, now), Ok(()));
        let later = now + Duration::from_secs(2);
        let expired_at = UNIX_EPOCH + Duration::from_millis(ms as u64 + 1000);
        assert_eq!(check(&counters, &expiring, "m", 0, later), Err(Refusal::Expired(expired_at)));
    }
}
