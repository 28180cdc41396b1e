//! What an operator allows each client, and the counters that hold it to
//! that: requests per minute (a sliding minute), requests per day (to
//! midnight in the configured zone), tokens per minute (estimated from the
//! request's size at admission, settled from `usageMetadata` when it ends),
//! the models it may use (exact names and `*` wildcards), expiry and disable,
//! and a budget of tokens or dollars per day, week or month. Checked once per
//! client request before anything goes upstream; the check and the count are
//! one step under one lock, so limits hold exactly under concurrency. Pure:
//! callers pass `now`.

mod minute;
mod shared;

pub use shared::{SharedAnswer, SharedAsk, SharedBudget, SharedLimits, SharedSettle, SharedVerdict};

use crate::config::BudgetPeriod;
use chrono_tz::Tz;
use minute::{Minute, second_of};
use std::collections::HashMap;
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
    /// Tokens or dollars per period.
    pub budget: Option<Budget>,
}

/// A budget: what a client may spend per period (0: not limited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Tokens, input and output.
    pub tokens: u64,
    /// Millionths of a US dollar, as `[prices]` prices them.
    pub micros: u64,
    /// How long it lasts.
    pub period: BudgetPeriod,
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
    /// Tokens per budget period (0: no budget).
    pub budget_tokens: i64,
    /// Micro-dollars per budget period (0: no budget).
    pub budget_micros: i64,
    /// The budget's period.
    pub budget_period: BudgetPeriod,
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
            budget: (terms.budget_tokens > 0 || terms.budget_micros > 0).then_some(Budget {
                tokens: terms.budget_tokens.max(0) as u64,
                micros: terms.budget_micros.max(0) as u64,
                period: terms.budget_period,
            }),
        };
        let limits =
            rules.rpm > 0 || rules.rpd > 0 || rules.tpm > 0 || !rules.models.is_empty() || rules.budget.is_some();
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
        /// `rpm`, `rpd`, `tpm`, `budget_tokens` or `budget_usd`.
        limit: &'static str,
        /// The limit's value (micro-dollars for `budget_usd`).
        allowed: u64,
        /// When a request fits again.
        until: SystemTime,
    },
}

/// What a request holds against its client's counters until it ends:
/// its token tally (under a token limit) and its estimate held against a
/// budget. Settled once, by [`ClientCounters::settle`].
#[derive(Debug, Default)]
pub struct Charge {
    counter: Option<Arc<ClientCounter>>,
    /// Under a token limit: the second the request was counted in, and
    /// its estimated tokens.
    tally: Option<(u64, u64)>,
    hold: Option<Spent>,
    /// Counted in the shared counters too: the client's name, under a
    /// budget its period's end (Unix ms), and what they hold for it.
    shared: Option<(Arc<str>, Option<u64>, Spent)>,
}

impl Charge {
    /// Whether the request holds nothing (its client has no token limits).
    pub fn is_empty(&self) -> bool {
        self.tally.is_none() && self.hold.is_none()
    }

    /// What settling it means for the shared counters, if it was counted there.
    pub fn shared_settle(&self, spent: Spent, now: SystemTime) -> Option<SharedSettle> {
        let (client, budget_ends, reserved) = self.shared.as_ref().filter(|_| !self.is_empty())?;
        Some(SharedSettle {
            client: client.clone(),
            tally: self.tally.map(|(second, _)| (second, reserved.tokens)),
            hold: self.hold.map(|_| *reserved).zip(*budget_ends),
            spent,
            now_ms: ms_of(now),
        })
    }
}

/// How an admission uses this replica's own counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Check every limit here, then count. With `share` above 1 (the
    /// shared counters cannot be asked), each of that many replicas admits
    /// its share of the request and token limits: the limit divided by the
    /// replicas, at least one. Budgets are checked whole against this
    /// replica's view (the store's figure at start plus its own spending).
    Checked {
        /// Replicas sharing the limits (1: this process alone).
        share: u32,
    },
    /// Count without checking: the shared counters admitted the request,
    /// and this replica keeps its own view warm for when they cannot be asked.
    Only,
}

fn ms_of(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Tokens and micro-dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// Tokens, input and output.
    pub tokens: u64,
    /// Millionths of a US dollar.
    pub micros: u64,
}

/// A client's spending in its current budget period.
#[derive(Debug)]
struct Spend {
    ends: SystemTime,
    settled: Spent,
    /// Estimates of requests still running.
    held: Spent,
}

#[derive(Debug, Default)]
struct Counter {
    /// Requests and tokens (estimated until settled) of the last minute.
    minute: Minute,
    day_count: u32,
    day_ends: Option<SystemTime>,
    spend: Option<Spend>,
}

/// One client's counters, behind its own lock: clients never wait for each
/// other, and a request reaches its client's counters through the handle
/// authentication gave it, with no lookup.
#[derive(Debug, Default)]
pub struct ClientCounter {
    state: Mutex<Counter>,
}

impl ClientCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counter> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every client's counters, by name, and the zone their days end in.
pub struct ClientCounters {
    zone: arc_swap::ArcSwap<Tz>,
    by_client: Mutex<HashMap<Arc<str>, Arc<ClientCounter>>>,
}

impl ClientCounters {
    /// Counters whose days end at midnight in `zone`.
    pub fn new(zone: Tz) -> Self {
        Self { zone: arc_swap::ArcSwap::from_pointee(zone), by_client: Mutex::new(HashMap::new()) }
    }

    /// Days end at midnight in `zone` from now on (a day already counted
    /// keeps its end).
    pub fn set_zone(&self, zone: Tz) {
        self.zone.store(Arc::new(zone));
    }

    /// The counters of `client` (made on first use); authentication hands
    /// them to the client's requests.
    pub fn of(&self, client: &Arc<str>) -> Arc<ClientCounter> {
        let mut registry = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        registry.entry(client.clone()).or_default().clone()
    }

    /// Admits one request of `client` for `model` at `now` and counts it, or
    /// refuses it (and counts nothing). Under a token limit, the request's
    /// tally starts at `estimate`'s tokens; a minute's requests are admitted
    /// while its tokens (settled, or estimated for those in flight) are under
    /// the limit. Under a budget, a request is admitted while the period's
    /// spending (settled, plus the estimates of those in flight) is under it.
    pub fn admit(
        &self,
        client: &Arc<ClientCounter>,
        rules: &ClientRules,
        model: &str,
        estimate: Spent,
        now: SystemTime,
    ) -> Result<Charge, Refusal> {
        self.admit_as(client, rules, model, estimate, now, Count::Checked { share: 1 })
    }

    /// [`ClientCounters::admit`], counting as `count` says.
    pub fn admit_as(
        &self,
        client: &Arc<ClientCounter>,
        rules: &ClientRules,
        model: &str,
        estimate: Spent,
        now: SystemTime,
        count: Count,
    ) -> Result<Charge, Refusal> {
        let Some((tpm, budget)) = counted(rules, model, now)? else { return Ok(Charge::default()) };
        let (share, check) = match count {
            Count::Checked { share } => (share.max(1), true),
            Count::Only => (1, false),
        };
        let (rpm, rpd) = (part(rules.rpm.into(), share) as u32, part(rules.rpd.into(), share) as u32);
        let tpm = part(tpm, share);
        let zone = **self.zone.load();
        let mut counter = client.lock();
        let counter = &mut *counter;
        let second = second_of(now);
        counter.minute.expire(second);
        if counter.day_ends.is_some_and(|end| end <= now) {
            counter.day_count = 0;
            counter.day_ends = None;
        }
        if check && rpd > 0 && counter.day_count >= rpd {
            let until = *counter.day_ends.get_or_insert_with(|| crate::midnight::next_midnight(zone, now));
            return Err(Refusal::Limit { limit: "rpd", allowed: rpd.into(), until });
        }
        if check && rpm > 0 && counter.minute.requests() >= u64::from(rpm) {
            let until = counter.minute.frees_at(second, false);
            return Err(Refusal::Limit { limit: "rpm", allowed: rpm.into(), until });
        }
        if check && tpm > 0 && counter.minute.tokens() >= tpm {
            let until = counter.minute.frees_at(second, true);
            return Err(Refusal::Limit { limit: "tpm", allowed: tpm, until });
        }
        if let Some(budget) = budget {
            let spend = current_spend(counter, zone, budget.period, now);
            let (tokens, micros) = (spend.settled.tokens + spend.held.tokens, spend.settled.micros + spend.held.micros);
            let over = if budget.tokens > 0 && tokens >= budget.tokens {
                Some(("budget_tokens", budget.tokens))
            } else if budget.micros > 0 && micros >= budget.micros {
                Some(("budget_usd", budget.micros))
            } else {
                None
            };
            if let Some((limit, allowed)) = over.filter(|_| check) {
                return Err(Refusal::Limit { limit, allowed, until: spend.ends });
            }
            spend.held.tokens += estimate.tokens;
            spend.held.micros += estimate.micros;
        }
        if rpm > 0 || tpm > 0 {
            counter.minute.add(second, if tpm > 0 { estimate.tokens } else { 0 });
        }
        if rpd > 0 {
            counter.day_count += 1;
            counter.day_ends.get_or_insert_with(|| crate::midnight::next_midnight(zone, now));
        }
        let tally = (tpm > 0).then_some((second, estimate.tokens));
        Ok(Charge { counter: Some(client.clone()), tally, hold: budget.map(|_| estimate), shared: None })
    }

    /// What the shared counters must check and count for this request of
    /// `name` (after the checks that need no counting: disabled, expired,
    /// model); `None` when nothing is counted.
    pub fn ask(
        &self,
        name: &Arc<str>,
        client: &Arc<ClientCounter>,
        rules: &ClientRules,
        model: &str,
        estimate: Spent,
        now: SystemTime,
    ) -> Result<Option<SharedAsk>, Refusal> {
        let Some((tpm, budget)) = counted(rules, model, now)? else { return Ok(None) };
        let zone = **self.zone.load();
        let budget = budget.map(|budget| {
            let mut counter = client.lock();
            let spend = current_spend(&mut counter, zone, budget.period, now);
            SharedBudget {
                tokens: budget.tokens,
                micros: budget.micros,
                ends_ms: ms_of(spend.ends),
                seed: spend.settled,
            }
        });
        Ok(Some(SharedAsk {
            client: name.clone(),
            second: second_of(now),
            rpm: rules.rpm,
            rpd: rules.rpd,
            tpm,
            estimate,
            day_ends_ms: ms_of(crate::midnight::next_midnight(zone, now)),
            budget,
        }))
    }

    /// The refusal the shared counters' `limit` means for `ask`.
    pub fn shared_refusal(ask: &SharedAsk, limit: &'static str, until_ms: Option<u64>) -> Refusal {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let budget = ask.budget.unwrap_or_default();
        let (allowed, until) = match limit {
            "rpm" => (u64::from(ask.rpm), until_ms.unwrap_or(ask.second * 1000 + 1000)),
            "tpm" => (ask.tpm, until_ms.unwrap_or(ask.second * 1000 + 1000)),
            "rpd" => (u64::from(ask.rpd), ask.day_ends_ms),
            "budget_tokens" => (budget.tokens, budget.ends_ms),
            _ => (budget.micros, budget.ends_ms),
        };
        Refusal::Limit { limit, allowed, until: at(until) }
    }

    /// Marks `charge` as counted in the shared counters for `ask`.
    pub fn mark_shared(charge: &mut Charge, ask: &SharedAsk, reserved: Spent) {
        charge.shared = Some((ask.client.clone(), ask.budget.map(|b| b.ends_ms), reserved));
    }

    /// Settles a request's charge with what it spent: its token tally gets
    /// the real count, and its budget's estimate is replaced by the spending
    /// (unless the period ended meanwhile).
    pub fn settle(&self, charge: &Charge, spent: Spent, now: SystemTime) {
        let Some(client) = charge.counter.as_ref().filter(|_| !charge.is_empty()) else { return };
        let mut counter = client.lock();
        if let Some((second, estimate)) = charge.tally {
            // Still in its minute: its estimate becomes its count.
            counter.minute.settle(second, estimate, spent.tokens);
        }
        let Some(hold) = charge.hold else { return };
        let Some(spend) = counter.spend.as_mut() else { return };
        spend.held.tokens = spend.held.tokens.saturating_sub(hold.tokens);
        spend.held.micros = spend.held.micros.saturating_sub(hold.micros);
        if spend.ends > now {
            spend.settled.tokens += spent.tokens;
            spend.settled.micros += spent.micros;
        }
    }

    /// Sets what `client` spent in its period ending at `ends` (read from
    /// the store at start, or when its budget changes).
    pub fn seed(&self, client: &Arc<str>, ends: SystemTime, settled: Spent) {
        let counter = self.of(client);
        let mut counter = counter.lock();
        match &mut counter.spend {
            Some(spend) if spend.ends == ends => spend.settled = settled,
            spend => *spend = Some(Spend { ends, settled, held: Spent::default() }),
        }
    }

    /// What `client` spent in its current period, settled and held.
    pub fn spent(&self, client: &str) -> Option<(Spent, Spent, SystemTime)> {
        let counter = self.by_client.lock().unwrap_or_else(|e| e.into_inner()).get(client)?.clone();
        let counter = counter.lock();
        let spend = counter.spend.as_ref()?;
        Some((spend.settled, spend.held, spend.ends))
    }

    /// The zone days and periods end in.
    pub fn zone(&self) -> Tz {
        **self.zone.load()
    }

    /// Forgets clients that no longer exist (revoked or deleted).
    pub fn retain(&self, alive: impl Fn(&str) -> bool) {
        self.by_client.lock().unwrap_or_else(|e| e.into_inner()).retain(|client, _| alive(client));
    }
}

/// The checks that count nothing (disabled, expired, model), then what is
/// counted for `model`: its token limit and budget (listing models generates
/// nothing, so neither applies to it); `None` when nothing is.
fn counted(rules: &ClientRules, model: &str, now: SystemTime) -> Result<Option<(u64, Option<Budget>)>, Refusal> {
    if rules.disabled {
        return Err(Refusal::Disabled);
    }
    if let Some(expires) = rules.expires.filter(|&at| at <= now) {
        return Err(Refusal::Expired(expires));
    }
    if !rules.allows(model) {
        return Err(Refusal::ModelNotAllowed);
    }
    let (tpm, budget) = if model.is_empty() { (0, None) } else { (rules.tpm, rules.budget) };
    let counts = rules.rpm > 0 || rules.rpd > 0 || tpm > 0 || budget.is_some();
    Ok(counts.then_some((tpm, budget)))
}

/// One replica's part of `limit` shared by `share` (0 stays 0: no limit).
fn part(limit: u64, share: u32) -> u64 {
    if limit == 0 { 0 } else { (limit / u64::from(share.max(1))).max(1) }
}

/// The spending of the period holding `now`, a new one when the last ended
/// (requests still running keep their holds).
fn current_spend(counter: &mut Counter, zone: Tz, period: BudgetPeriod, now: SystemTime) -> &mut Spend {
    let spend = counter.spend.get_or_insert_with(|| Spend {
        ends: crate::midnight::period(zone, now, period).1,
        settled: Spent::default(),
        held: Spent::default(),
    });
    if spend.ends <= now {
        spend.ends = crate::midnight::period(zone, now, period).1;
        spend.settled = Spent::default();
    }
    spend
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<str> {
        Arc::from("alice")
    }

    fn tokens(tokens: u64) -> Spent {
        Spent { tokens, micros: 0 }
    }

    fn check(
        counters: &ClientCounters,
        rules: &ClientRules,
        model: &str,
        estimate: u64,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        counters.admit(&counters.of(&client()), rules, model, tokens(estimate), now).map(|_| ())
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
        // A request counts in its second and the sixty after it.
        let t0 = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let second = |secs: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        assert_eq!(check(&counters, &rules, "m", 0, t0), Ok(()));
        assert_eq!(check(&counters, &rules, "m", 0, at(10)), Ok(()));
        let refused = check(&counters, &rules, "m", 0, at(20));
        assert_eq!(refused, Err(Refusal::Limit { limit: "rpm", allowed: 2, until: second(61) }));
        assert!(check(&counters, &rules, "m", 0, at(60)).is_err(), "never more than 2 in a rolling minute");
        assert_eq!(check(&counters, &rules, "m", 0, at(61)), Ok(()));
        let refused = check(&counters, &rules, "m", 0, at(61));
        assert_eq!(refused, Err(Refusal::Limit { limit: "rpm", allowed: 2, until: second(71) }));
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
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = counters.admit(&counters.of(&client()), &rules, "m", tokens(30), t0).unwrap();
        let second = counters.admit(&counters.of(&client()), &rules, "m", tokens(30), t0).unwrap();
        // Both settle higher than estimated: the minute is used up.
        counters.settle(&first, tokens(60), t0);
        counters.settle(&second, tokens(50), t0);
        let refused = check(&counters, &rules, "m", 30, t0 + Duration::from_secs(1));
        assert_eq!(refused, Err(Refusal::Limit { limit: "tpm", allowed: 100, until: t0 + Duration::from_secs(61) }));
        // A failed request settles at 0 and frees its share.
        counters.settle(&second, tokens(0), t0);
        assert!(check(&counters, &rules, "m", 30, t0 + Duration::from_secs(2)).is_ok());
        let listing = counters.admit(&counters.of(&client()), &rules, "", tokens(0), t0 + Duration::from_secs(2));
        assert!(listing.is_ok_and(|charge| charge.is_empty()), "listing is free");
        assert!(check(&counters, &rules, "m", 30, t0 + Duration::from_secs(63)).is_ok());
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

    #[test]
    fn a_budget_holds_estimates_settles_spending_and_starts_again() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let terms = ClientTerms { budget_micros: 1_000, budget_period: BudgetPeriod::Day, ..Default::default() };
        let rules = ClientRules::new(&terms).unwrap();
        let t0 = SystemTime::now();
        let cost = |micros| Spent { tokens: 10, micros };
        let first = counters.admit(&counters.of(&client()), &rules, "m", cost(600), t0).unwrap();
        let second = counters.admit(&counters.of(&client()), &rules, "m", cost(600), t0).unwrap();
        // Two estimates in flight pass the budget: the next waits.
        let midnight = crate::midnight::next_midnight(chrono_tz::UTC, t0);
        let refused = Err(Refusal::Limit { limit: "budget_usd", allowed: 1_000, until: midnight });
        assert_eq!(counters.admit(&counters.of(&client()), &rules, "m", cost(1), t0).map(|_| ()), refused);
        counters.settle(&first, cost(100), t0);
        counters.settle(&second, cost(100), t0);
        assert_eq!(counters.spent("alice").map(|s| (s.0.micros, s.1.micros)), Some((200, 0)));
        counters.seed(&client(), midnight, cost(999));
        let last = counters.admit(&counters.of(&client()), &rules, "m", cost(5), t0).unwrap();
        counters.settle(&last, cost(5), t0);
        assert_eq!(counters.admit(&counters.of(&client()), &rules, "m", cost(1), t0).map(|_| ()), refused);
        assert!(
            counters.admit(&counters.of(&client()), &rules, "m", cost(1), midnight).is_ok(),
            "a new day, a new budget"
        );
        let tokens_only = ClientTerms { budget_tokens: 10, ..Default::default() };
        let rules = ClientRules::new(&tokens_only).unwrap();
        let bob: Arc<str> = Arc::from("bob");
        assert!(counters.admit(&counters.of(&bob), &rules, "m", cost(0), t0).is_ok());
        let refused = counters.admit(&counters.of(&bob), &rules, "m", cost(0), t0).map(|_| ());
        assert!(matches!(refused, Err(Refusal::Limit { limit: "budget_tokens", allowed: 10, .. })));
    }

    #[test]
    fn a_share_admits_its_part_and_counting_only_never_refuses() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let rules = ClientRules::new(&ClientTerms { rpm: 10, rpd: 3, ..Default::default() }).unwrap();
        let now = SystemTime::now();
        let counter = counters.of(&client());
        let count = |mode| counters.admit_as(&counter, &rules, "m", tokens(0), now, mode).map(|_| ());
        // Counted only (the shared counters admitted them): past the day's 3, no refusal.
        for _ in 0..4 {
            assert_eq!(count(Count::Only), Ok(()));
        }
        let other = ClientRules::new(&ClientTerms { rpm: 10, ..Default::default() }).unwrap();
        let bob = counters.of(&Arc::from("bob"));
        let share = |n| counters.admit_as(&bob, &other, "m", tokens(0), now, Count::Checked { share: n });
        // Three replicas: a third of 10 is 3 here.
        for _ in 0..3 {
            assert!(share(3).is_ok());
        }
        assert!(matches!(share(3), Err(Refusal::Limit { limit: "rpm", allowed: 3, .. })));
        // Twenty replicas: still at least one each.
        assert_eq!(part(10, 20), 1);
        assert_eq!(part(0, 3), 0, "no limit stays none");
    }

    #[test]
    fn the_shared_ask_carries_the_limits_and_the_seeded_budget() {
        let counters = ClientCounters::new(chrono_tz::UTC);
        let terms = ClientTerms { rpm: 5, tpm: 100, budget_tokens: 50, ..Default::default() };
        let rules = ClientRules::new(&terms).unwrap();
        let now = SystemTime::now();
        let ends = crate::midnight::period(chrono_tz::UTC, now, BudgetPeriod::Month).1;
        counters.seed(&client(), ends, tokens(20));
        let ask = counters.ask(&client(), &counters.of(&client()), &rules, "m", tokens(7), now).unwrap().unwrap();
        assert_eq!((ask.rpm, ask.rpd, ask.tpm, ask.estimate), (5, 0, 100, tokens(7)));
        assert_eq!(ask.budget.map(|b| (b.tokens, b.ends_ms, b.seed)), Some((50, ms_of(ends), tokens(20))));
        let listing = counters.ask(&client(), &counters.of(&client()), &rules, "", tokens(0), now).unwrap().unwrap();
        assert_eq!((listing.tpm, listing.budget), (0, None), "listing counts only as a request");
        let refused = ClientCounters::shared_refusal(&ask, "budget_tokens", None);
        assert_eq!(
            refused,
            Refusal::Limit {
                limit: "budget_tokens",
                allowed: 50,
                until: UNIX_EPOCH + Duration::from_millis(ms_of(ends))
            }
        );
        let free = ClientRules::new(&ClientTerms { disabled: true, ..Default::default() }).unwrap();
        assert_eq!(
            counters.ask(&client(), &counters.of(&client()), &free, "m", tokens(0), now),
            Err(Refusal::Disabled)
        );
    }
}
