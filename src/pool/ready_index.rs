//! The supervisor's index of which keys can serve which model right now, and
//! the lease strategies over it. Pure data: no actors, no I/O, no clock of its
//! own (callers pass `now`), so it is unit-tested directly.
//!
//! The index owns no key state: disables and rests are copied from the
//! KeyActor's [`KeyState`] by [`ReadyIndex::sync`], which replaces the whole
//! copy, so the index cannot drift from the truth. Between an outcome that
//! will change a key and the actor's answer, [`ReadyIndex::hold`] keeps the
//! key out of leases. What the index does own is its own work: pacing
//! counters for declared limits and attempts in flight.
//!
//! Every model seen gets a [`ModelReady`]: an `IndexSet` of usable key slots
//! (O(1) pick by position, O(1) removal) and a `BTreeSet` of cooling keys
//! ordered by when they free up (O(log n) expiry, O(1) "soonest"). A lease
//! never scans all keys, so its cost stays flat as the pool grows.

use crate::config::{ModelLimits, Strategy};
use crate::key_state::KeyState;
use crate::policy::next_pacific_midnight;
use indexmap::IndexSet;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Position of a key in the pool's slot table.
pub type SlotIndex = u32;

/// Why no key could be leased.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// No key is configured at all.
    #[error("the key pool is empty: add Gemini API keys to the keys folder")]
    EmptyPool,
    /// Every key is disabled.
    #[error("all {total} keys are disabled")]
    AllDisabled {
        /// Keys in the pool.
        total: usize,
    },
    /// Every usable key is cooling down (or pacing itself) for this model.
    #[error("all keys are cooling down for this model")]
    AllCooling {
        /// When the first key frees up.
        soonest: SystemTime,
    },
    /// Every usable key has reached a limit declared in `[models]` for this
    /// model (self-pacing), not a rest Google asked for.
    #[error("every key has reached its declared {limit} for this model")]
    AllPaced {
        /// When the first key may be used again.
        soonest: SystemTime,
        /// `rpm` or `rpd`.
        limit: &'static str,
    },
    /// Every usable key was already tried by this request.
    #[error("every usable key was already tried for this request")]
    AllTried,
    /// The pool supervisor is not running (shutting down).
    #[error("the key pool is not running")]
    Unavailable,
}

/// A key held back for a model by a limit declared in config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacingWait {
    /// The model.
    pub model: Arc<str>,
    /// `rpm` or `rpd`.
    pub limit: &'static str,
    /// When the key may serve the model again.
    pub until: SystemTime,
}

#[derive(Default)]
struct Pace {
    minute: VecDeque<SystemTime>,
    day_count: u32,
    day_resets: Option<SystemTime>,
}

impl Pace {
    /// When this key may next be leased for the model under `limits`.
    fn blocked_until(&mut self, limits: ModelLimits, now: SystemTime) -> Option<SystemTime> {
        let window = Duration::from_secs(60);
        while self.minute.front().is_some_and(|&t| t + window <= now) {
            self.minute.pop_front();
        }
        if self.day_resets.is_some_and(|reset| reset <= now) {
            self.day_count = 0;
            self.day_resets = None;
        }
        let by_day = (limits.rpd > 0 && self.day_count >= limits.rpd).then_some(self.day_resets).flatten();
        let by_minute = (limits.rpm > 0 && self.minute.len() >= limits.rpm as usize)
            .then(|| self.minute.front().map(|&t| t + window))
            .flatten();
        by_day.max(by_minute)
    }

    /// The declared limit that holds the key now (the later-ending one), and until when.
    fn limit_hit(&mut self, limits: ModelLimits, now: SystemTime) -> Option<(&'static str, SystemTime)> {
        let until = self.blocked_until(limits, now)?;
        let by_day = limits.rpd > 0 && self.day_count >= limits.rpd && self.day_resets == Some(until);
        Some((if by_day { "rpd" } else { "rpm" }, until))
    }

    fn record(&mut self, limits: ModelLimits, now: SystemTime) {
        if limits.rpm > 0 {
            self.minute.push_back(now);
        }
        if limits.rpd > 0 {
            self.day_count += 1;
            self.day_resets.get_or_insert_with(|| next_pacific_midnight(now));
        }
    }
}

/// The limits a process paces `model` to: its share of what `[models]`
/// declares when `share` replicas use the same keys (at least one request).
fn paced(limits: &HashMap<String, ModelLimits>, share: u32, model: &str) -> ModelLimits {
    let declared = limits.get(model).copied().unwrap_or_default();
    let part = |limit: u32| if limit == 0 { 0 } else { (limit / share.max(1)).max(1) };
    ModelLimits { rpm: part(declared.rpm), rpd: part(declared.rpd) }
}

struct KeyAvail {
    /// Copied from the key's state by `sync`.
    disabled: bool,
    /// Copied from the key's state by `sync`.
    all_until: Option<SystemTime>,
    /// Copied from the key's state by `sync`.
    model_until: HashMap<Arc<str>, SystemTime>,
    /// Out of leases until the key's actor sends its new state (or this passes).
    held_until: Option<SystemTime>,
    pacing: HashMap<Arc<str>, Pace>,
    in_flight: u32,
    /// Its share of leases relative to other keys (at least 1).
    weight: u32,
}

impl Default for KeyAvail {
    fn default() -> Self {
        Self {
            disabled: false,
            all_until: None,
            model_until: HashMap::new(),
            held_until: None,
            pacing: HashMap::new(),
            in_flight: 0,
            weight: 1,
        }
    }
}

/// How long a held key waits for its actor's answer at most; the answer
/// normally arrives within microseconds, this only bounds a lost one.
const HOLD_LIMIT: Duration = Duration::from_secs(1);

struct ModelReady {
    limits: ModelLimits,
    ready: IndexSet<SlotIndex>,
    cooling: BTreeSet<(SystemTime, SlotIndex)>,
    cooling_at: HashMap<SlotIndex, SystemTime>,
    cursor: usize,
    /// Leases the key at the cursor had in a row (round robin gives a key
    /// of weight w w leases in a row).
    streak: u32,
}

/// Usable keys per model, with lease strategies and self-pacing.
pub struct ReadyIndex {
    keys: Vec<Option<KeyAvail>>,
    live: usize,
    models: HashMap<Arc<str>, ModelReady>,
    limits: HashMap<String, ModelLimits>,
    strategy: Strategy,
    rng: SmallRng,
    /// The largest key weight (1 when every key weighs the same).
    max_weight: u32,
    /// Replicas pacing the same keys: each paces to its share of a declared limit.
    share: u32,
}

/// Model indexes kept at most; a client inventing model names cannot grow
/// memory without bound (an index with nothing cooling is dropped first).
const MAX_MODEL_INDEXES: usize = 512;

impl ReadyIndex {
    /// An empty index.
    pub fn new(strategy: Strategy, limits: HashMap<String, ModelLimits>) -> Self {
        Self {
            keys: Vec::new(),
            live: 0,
            models: HashMap::new(),
            limits,
            strategy,
            rng: SmallRng::from_os_rng(),
            max_weight: 1,
            share: 1,
        }
    }

    fn paced(&self, model: &str) -> ModelLimits {
        paced(&self.limits, self.share, model)
    }

    /// `replicas` use the same keys: each paces to its share of every
    /// declared limit (at least one request), so together they keep to it.
    pub fn set_share(&mut self, replicas: u32, now: SystemTime) {
        self.share = replicas.max(1);
        let paced: Vec<(Arc<str>, ModelLimits)> =
            self.models.keys().map(|name| (name.clone(), self.paced(name))).collect();
        for (name, limits) in paced {
            if let Some(model) = self.models.get_mut(&name) {
                model.limits = limits;
            }
        }
        // Keys paced under the old share move where the new one puts them
        // (rare: when replicas come or go, or limits are reloaded).
        for slot in 0..self.keys.len() as SlotIndex {
            if self.keys[slot as usize].is_some() {
                self.place_everywhere(slot, now);
            }
        }
    }

    /// Sets a key's weight (its share of leases relative to other keys).
    pub fn set_weight(&mut self, slot: SlotIndex, weight: u32) {
        let Some(Some(avail)) = self.keys.get_mut(slot as usize) else { return };
        let (old, new) = (avail.weight, weight.max(1));
        avail.weight = new;
        if new >= self.max_weight {
            self.max_weight = new;
        } else if old == self.max_weight {
            self.max_weight = self.keys.iter().flatten().map(|k| k.weight).max().unwrap_or(1);
        }
    }

    /// Number of keys in the index.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Changes the strategy and per-model limits (a config reload).
    pub fn reconfigure(&mut self, strategy: Strategy, limits: HashMap<String, ModelLimits>, now: SystemTime) {
        self.strategy = strategy;
        self.limits = limits;
        self.set_share(self.share, now);
    }

    /// Adds a key at `slot` with its state (persisted, or new).
    pub fn insert(&mut self, slot: SlotIndex, state: &KeyState, now: SystemTime) {
        let position = slot as usize;
        if self.keys.len() <= position {
            self.keys.resize_with(position + 1, || None);
        }
        if self.keys[position].is_none() {
            self.live += 1;
        }
        self.keys[position] = Some(KeyAvail::default());
        self.sync(slot, state, now);
    }

    /// Replaces the index's copy of a key's disable and rests with `state`,
    /// the key's truth as its actor published it, and ends any hold.
    pub fn sync(&mut self, slot: SlotIndex, state: &KeyState, now: SystemTime) {
        let Some(Some(avail)) = self.keys.get_mut(slot as usize) else { return };
        avail.disabled = state.disabled.is_some();
        avail.held_until = None;
        avail.all_until = None;
        avail.model_until.clear();
        for rest in state.cooldowns.iter().filter(|rest| rest.until > now) {
            match &rest.model {
                None => avail.all_until = avail.all_until.max(Some(rest.until)),
                Some(model) => {
                    let until = avail.model_until.entry(model.clone()).or_insert(rest.until);
                    *until = (*until).max(rest.until);
                }
            }
        }
        let models: Vec<Arc<str>> = avail.model_until.keys().cloned().collect();
        for model in models {
            self.model_entry(&model, now);
        }
        self.place_everywhere(slot, now);
    }

    /// Keeps a key out of leases until its actor sends the state an outcome
    /// is changing (a rest or a disable), so no lease races that change.
    pub fn hold(&mut self, slot: SlotIndex, now: SystemTime) {
        let Some(Some(avail)) = self.keys.get_mut(slot as usize) else { return };
        avail.held_until = Some(now + HOLD_LIMIT);
        self.place_everywhere(slot, now);
    }

    /// Removes a key (it left its file).
    pub fn remove(&mut self, slot: SlotIndex) {
        if let Some(entry) = self.keys.get_mut(slot as usize)
            && entry.take().is_some()
        {
            self.live -= 1;
            for model in self.models.values_mut() {
                model.unplace(slot);
            }
        }
    }

    /// Hands out a key for `model`, skipping `exclude` (keys this request
    /// tried): `prefer` when it is ready, else one the strategy picks.
    pub fn lease(
        &mut self,
        model: &Arc<str>,
        exclude: &[SlotIndex],
        prefer: Option<SlotIndex>,
        now: SystemTime,
    ) -> Result<SlotIndex, LeaseError> {
        if self.live == 0 {
            return Err(LeaseError::EmptyPool);
        }
        self.model_entry(model, now);
        self.expire(model, now);
        loop {
            let preferred = prefer.filter(|slot| {
                !exclude.contains(slot) && self.models.get(model).is_some_and(|m| m.ready.contains(slot))
            });
            let picked = match preferred.map_or_else(|| self.pick(model, exclude), Ok) {
                Ok(picked) => picked,
                Err(LeaseError::AllCooling { soonest }) => return Err(self.why_cooling(model, soonest, now)),
                Err(err) => return Err(err),
            };
            let limits = self.models.get(model).map(|m| m.limits).unwrap_or_default();
            let Some(avail) = self.keys.get_mut(picked as usize).and_then(Option::as_mut) else {
                return Err(LeaseError::Unavailable);
            };
            // Only models with declared limits are paced, so a client inventing
            // model names adds no per-key entries.
            let mut now_blocked = false;
            if limits != ModelLimits::default() {
                let pace = avail.pacing.entry(model.clone()).or_default();
                if pace.blocked_until(limits, now).is_some() {
                    // Limits changed under it: move it to cooling and pick again.
                    self.place(picked, model, now);
                    continue;
                }
                pace.record(limits, now);
                now_blocked = pace.blocked_until(limits, now).is_some();
            }
            avail.in_flight += 1;
            if now_blocked {
                self.place(picked, model, now);
            }
            return Ok(picked);
        }
    }

    /// Tells a pacing wait from a rest: when the key that frees first is held
    /// only by a limit declared in config, the refusal says which.
    fn why_cooling(&mut self, model: &Arc<str>, soonest: SystemTime, now: SystemTime) -> LeaseError {
        let cooling = LeaseError::AllCooling { soonest };
        let Some(entry) = self.models.get(model) else { return cooling };
        let limits = entry.limits;
        let Some(&(_, slot)) = entry.cooling.first() else { return cooling };
        let Some(Some(avail)) = self.keys.get_mut(slot as usize) else { return cooling };
        let rest = avail.all_until.max(avail.model_until.get(model).copied()).filter(|&until| until > now);
        let Some(pace) = avail.pacing.get_mut(model) else { return cooling };
        match pace.limit_hit(limits, now) {
            Some((limit, until)) if rest.is_none_or(|rest| rest < until) => LeaseError::AllPaced { soonest, limit },
            _ => cooling,
        }
    }

    /// Keys held back by a limit declared in config right now: gemgate's own
    /// pacing, for the admin.
    pub fn pacing_waits(&mut self, now: SystemTime) -> Vec<(SlotIndex, PacingWait)> {
        let (limits, share) = (&self.limits, self.share);
        let mut waits = Vec::new();
        for (slot, avail) in self.keys.iter_mut().enumerate() {
            let Some(avail) = avail else { continue };
            for (model, pace) in &mut avail.pacing {
                if let Some((limit, until)) = pace.limit_hit(paced(limits, share, model), now) {
                    waits.push((slot as SlotIndex, PacingWait { model: model.clone(), limit, until }));
                }
            }
        }
        waits
    }

    /// Attempts in flight on every key.
    pub fn in_flight_total(&self) -> u64 {
        self.keys.iter().flatten().map(|k| u64::from(k.in_flight)).sum()
    }

    /// A leased attempt ended.
    pub fn release(&mut self, slot: SlotIndex) {
        if let Some(Some(avail)) = self.keys.get_mut(slot as usize) {
            avail.in_flight = avail.in_flight.saturating_sub(1);
        }
    }

    fn model_entry(&mut self, model: &Arc<str>, now: SystemTime) {
        if self.models.contains_key(model) {
            return;
        }
        if self.models.len() >= MAX_MODEL_INDEXES {
            let idle = self.models.iter().find(|(_, m)| m.cooling.is_empty()).map(|(name, _)| name.clone());
            if let Some(name) = idle {
                self.models.remove(&name);
            }
        }
        let limits = self.paced(model);
        let entry = ModelReady {
            limits,
            ready: IndexSet::with_capacity(self.live),
            cooling: BTreeSet::new(),
            cooling_at: HashMap::new(),
            cursor: 0,
            streak: 0,
        };
        self.models.insert(model.clone(), entry);
        for slot in 0..self.keys.len() as SlotIndex {
            if self.keys[slot as usize].is_some() {
                self.place(slot, model, now);
            }
        }
    }

    fn place_everywhere(&mut self, slot: SlotIndex, now: SystemTime) {
        let models: Vec<Arc<str>> = self.models.keys().cloned().collect();
        for model in models {
            self.place(slot, &model, now);
        }
    }

    /// Puts `slot` where it belongs in `model`'s index: ready, cooling, or
    /// nowhere (disabled).
    fn place(&mut self, slot: SlotIndex, model: &Arc<str>, now: SystemTime) {
        let Some(entry) = self.models.get_mut(model) else { return };
        entry.unplace(slot);
        let Some(Some(avail)) = self.keys.get_mut(slot as usize) else { return };
        if avail.disabled {
            return;
        }
        let paced = avail.pacing.get_mut(model).and_then(|p| p.blocked_until(entry.limits, now));
        let until = avail.all_until.max(avail.model_until.get(model).copied()).max(paced).max(avail.held_until);
        match until {
            Some(until) if until > now => {
                entry.cooling.insert((until, slot));
                entry.cooling_at.insert(slot, until);
            }
            _ => {
                entry.ready.insert(slot);
            }
        }
    }

    fn expire(&mut self, model: &Arc<str>, now: SystemTime) {
        loop {
            let Some(entry) = self.models.get(model) else { return };
            let Some(&(until, slot)) = entry.cooling.first() else { return };
            if until > now {
                return;
            }
            if let Some(Some(avail)) = self.keys.get_mut(slot as usize) {
                if avail.all_until.is_some_and(|t| t <= now) {
                    avail.all_until = None;
                }
                if avail.model_until.get(model).is_some_and(|&t| t <= now) {
                    avail.model_until.remove(model);
                }
                if avail.held_until.is_some_and(|t| t <= now) {
                    avail.held_until = None;
                }
            }
            self.place(slot, model, now);
        }
    }

    fn pick(&mut self, model: &Arc<str>, exclude: &[SlotIndex]) -> Result<SlotIndex, LeaseError> {
        let strategy = self.strategy;
        let Some(entry) = self.models.get_mut(model) else { return Err(LeaseError::Unavailable) };
        let len = entry.ready.len();
        if len == 0 {
            return Err(match entry.cooling.first() {
                Some(&(soonest, _)) => LeaseError::AllCooling { soonest },
                None => LeaseError::AllDisabled { total: self.live },
            });
        }
        let usable = |slot: &SlotIndex| !exclude.contains(slot);
        let at = |position: usize| entry.ready.get_index(position).copied();
        let keys = &self.keys;
        let weight = |slot: SlotIndex| keys[slot as usize].as_ref().map_or(1, |k| k.weight);
        let chosen = match strategy {
            Strategy::RoundRobin => {
                // A key of weight w takes w leases in a row before the cursor moves on.
                let start = entry.cursor;
                entry.streak += 1;
                if at(start % len).is_none_or(|slot| entry.streak >= weight(slot)) {
                    entry.cursor = entry.cursor.wrapping_add(1);
                    entry.streak = 0;
                }
                (0..len).filter_map(|step| at((start + step) % len)).find(usable)
            }
            Strategy::Random => {
                let start = weighted_position(&mut self.rng, len, self.max_weight, |p| at(p).map_or(1, weight));
                (0..len).filter_map(|step| at((start + step) % len)).find(usable)
            }
            Strategy::LeastInFlight => {
                // Power of two choices: near-least load at O(1) cost.
                let first = weighted_position(&mut self.rng, len, self.max_weight, |p| at(p).map_or(1, weight));
                let second = weighted_position(&mut self.rng, len, self.max_weight, |p| at(p).map_or(1, weight));
                let a = (0..len).filter_map(|step| at((first + step) % len)).find(usable);
                let b = (0..len).filter_map(|step| at((second + step) % len)).find(usable);
                match (a, b) {
                    (Some(a), Some(b)) => {
                        // Load per unit of weight: a heavier key takes more in flight.
                        let load = |slot: SlotIndex| keys[slot as usize].as_ref().map_or(0, |k| u64::from(k.in_flight));
                        let lighter = load(b) * u64::from(weight(a)) < load(a) * u64::from(weight(b));
                        Some(if lighter { b } else { a })
                    }
                    (a, b) => a.or(b),
                }
            }
        };
        chosen.ok_or(LeaseError::AllTried)
    }
}

/// A random position among `len`, weighted by rejection: the key at a
/// position of weight w is kept with probability w / `max_weight` (a few
/// tries bound the cost when weights differ wildly).
fn weighted_position(rng: &mut SmallRng, len: usize, max_weight: u32, weight_at: impl Fn(usize) -> u32) -> usize {
    let mut position = rng.random_range(0..len);
    if max_weight <= 1 {
        return position;
    }
    for _ in 0..32 {
        if rng.random_range(0..max_weight) < weight_at(position) {
            break;
        }
        position = rng.random_range(0..len);
    }
    position
}

impl ModelReady {
    fn unplace(&mut self, slot: SlotIndex) {
        self.ready.swap_remove(&slot);
        if let Some(until) = self.cooling_at.remove(&slot) {
            self.cooling.remove(&(until, slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_state::{CooldownEntry, Disabled};

    fn model(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn index(keys: u32, strategy: Strategy) -> (ReadyIndex, SystemTime) {
        let now = SystemTime::now();
        let mut index = ReadyIndex::new(strategy, HashMap::new());
        for slot in 0..keys {
            index.insert(slot, &KeyState::default(), now);
        }
        (index, now)
    }

    /// A key state resting on `rests` ((None: every model, until)).
    fn resting(rests: &[(Option<&Arc<str>>, SystemTime)]) -> KeyState {
        let cooldowns = rests
            .iter()
            .map(|(model, until)| CooldownEntry {
                model: model.cloned(),
                until: *until,
                reason: "test".into(),
                source: Default::default(),
            })
            .collect();
        KeyState { cooldowns, ..KeyState::default() }
    }

    fn disabled() -> KeyState {
        let reason = crate::key_state::DisableReason::Manual;
        KeyState { disabled: Some(Disabled { reason, since: SystemTime::now() }), ..KeyState::default() }
    }

    #[test]
    fn empty_pool_says_so() {
        let (mut idx, now) = index(0, Strategy::RoundRobin);
        assert_eq!(idx.lease(&model("m"), &[], None, now), Err(LeaseError::EmptyPool));
    }

    #[test]
    fn round_robin_visits_every_key() {
        let (mut idx, now) = index(3, Strategy::RoundRobin);
        let m = model("m");
        let mut seen: Vec<_> = (0..3).map(|_| idx.lease(&m, &[], None, now).unwrap()).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn excluded_keys_are_skipped_and_all_tried_reported() {
        for strategy in [Strategy::RoundRobin, Strategy::Random, Strategy::LeastInFlight] {
            let (mut idx, now) = index(2, strategy);
            let m = model("m");
            for _ in 0..20 {
                assert_eq!(idx.lease(&m, &[0], None, now), Ok(1));
            }
            assert_eq!(idx.lease(&m, &[0, 1], None, now), Err(LeaseError::AllTried));
        }
    }

    #[test]
    fn cooldown_is_per_model_and_expires() {
        let (mut idx, now) = index(1, Strategy::RoundRobin);
        let (pro, flash) = (model("pro"), model("flash"));
        let until = now + Duration::from_secs(30);
        idx.sync(0, &resting(&[(Some(&pro), until)]), now);
        assert_eq!(idx.lease(&pro, &[], None, now), Err(LeaseError::AllCooling { soonest: until }));
        assert_eq!(idx.lease(&flash, &[], None, now), Ok(0));
        assert_eq!(idx.lease(&pro, &[], None, until), Ok(0));
    }

    #[test]
    fn cooldown_for_all_models_and_soonest_of_several() {
        let (mut idx, now) = index(2, Strategy::RoundRobin);
        let m = model("m");
        idx.sync(0, &resting(&[(None, now + Duration::from_secs(50))]), now);
        idx.sync(1, &resting(&[(Some(&m), now + Duration::from_secs(20))]), now);
        assert_eq!(
            idx.lease(&m, &[], None, now),
            Err(LeaseError::AllCooling { soonest: now + Duration::from_secs(20) })
        );
        // A model first seen after the all-models rest still respects it.
        assert_eq!(idx.lease(&model("other"), &[], None, now), Ok(1));
        assert_eq!(idx.lease(&model("other"), &[1], None, now), Err(LeaseError::AllTried));
    }

    #[test]
    fn a_daily_quota_survives_the_end_of_an_all_models_rest() {
        let (mut idx, now) = index(1, Strategy::RoundRobin);
        let (pro, flash) = (model("pro"), model("flash"));
        let midnight = now + Duration::from_secs(9 * 3600);
        let all_end = now + Duration::from_secs(60);
        idx.sync(0, &resting(&[(Some(&pro), midnight), (None, all_end)]), now);
        assert_eq!(idx.lease(&flash, &[], None, now), Err(LeaseError::AllCooling { soonest: all_end }));
        // Lazily, at lease time, before the key's actor says the rest ended...
        let later = now + Duration::from_secs(61);
        assert_eq!(idx.lease(&flash, &[], None, later), Ok(0));
        assert_eq!(idx.lease(&pro, &[], None, later), Err(LeaseError::AllCooling { soonest: midnight }));
        // ...and after it has.
        idx.sync(0, &resting(&[(Some(&pro), midnight)]), later);
        assert_eq!(idx.lease(&flash, &[], None, later), Ok(0));
        assert_eq!(idx.lease(&pro, &[], None, later), Err(LeaseError::AllCooling { soonest: midnight }));
    }

    #[test]
    fn disabled_keys_never_lease_and_come_back_when_enabled() {
        let (mut idx, now) = index(1, Strategy::RoundRobin);
        let m = model("m");
        idx.sync(0, &disabled(), now);
        assert_eq!(idx.lease(&m, &[], None, now), Err(LeaseError::AllDisabled { total: 1 }));
        idx.sync(0, &KeyState::default(), now);
        assert_eq!(idx.lease(&m, &[], None, now), Ok(0));
    }

    #[test]
    fn rpm_limit_paces_the_key() {
        let now = SystemTime::now();
        let limits = HashMap::from([("pro".to_string(), ModelLimits { rpm: 2, rpd: 0 })]);
        let mut idx = ReadyIndex::new(Strategy::RoundRobin, limits);
        idx.insert(0, &KeyState::default(), now);
        let pro = model("pro");
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        assert_eq!(idx.lease(&pro, &[], None, now + Duration::from_secs(1)), Ok(0));
        let third = idx.lease(&pro, &[], None, now + Duration::from_secs(2));
        assert_eq!(third, Err(LeaseError::AllPaced { soonest: now + Duration::from_secs(60), limit: "rpm" }));
        assert_eq!(idx.lease(&model("flash"), &[], None, now), Ok(0));
        assert_eq!(idx.lease(&pro, &[], None, now + Duration::from_secs(60)), Ok(0));
    }

    #[test]
    fn replicas_pace_to_their_share_of_a_declared_limit() {
        let now = SystemTime::now();
        let limits = HashMap::from([("pro".to_string(), ModelLimits { rpm: 5, rpd: 0 })]);
        let mut idx = ReadyIndex::new(Strategy::RoundRobin, limits);
        idx.insert(0, &KeyState::default(), now);
        let pro = model("pro");
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        // Two replicas now: this one's share of 5 is 2, and one is used.
        idx.set_share(2, now);
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        assert!(matches!(idx.lease(&pro, &[], None, now), Err(LeaseError::AllPaced { limit: "rpm", .. })));
        assert_eq!(idx.pacing_waits(now).len(), 1, "the admin sees the wait");
        // Alone again: the whole limit.
        idx.set_share(1, now);
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        assert_eq!(
            paced(&HashMap::from([("m".to_string(), ModelLimits { rpm: 3, rpd: 1 })]), 10, "m"),
            ModelLimits { rpm: 1, rpd: 1 }
        );
    }

    #[test]
    fn a_pacing_refusal_says_which_limit() {
        let limits = HashMap::from([("pro".to_string(), ModelLimits { rpm: 1, rpd: 0 })]);
        let now = SystemTime::now();
        let mut idx = ReadyIndex::new(Strategy::RoundRobin, limits);
        idx.insert(0, &KeyState::default(), now);
        let pro = model("pro");
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        let refused = idx.lease(&pro, &[], None, now);
        assert_eq!(refused, Err(LeaseError::AllPaced { soonest: now + Duration::from_secs(60), limit: "rpm" }));
        // A rest Google asked for that outlasts the pacing is a rest.
        idx.sync(0, &resting(&[(Some(&pro), now + Duration::from_secs(600))]), now);
        let rested = idx.lease(&pro, &[], None, now);
        assert_eq!(rested, Err(LeaseError::AllCooling { soonest: now + Duration::from_secs(600) }));
    }

    #[test]
    fn rpd_limit_holds_until_pacific_midnight() {
        let now = SystemTime::now();
        let limits = HashMap::from([("pro".to_string(), ModelLimits { rpm: 0, rpd: 1 })]);
        let mut idx = ReadyIndex::new(Strategy::RoundRobin, limits);
        idx.insert(0, &KeyState::default(), now);
        let pro = model("pro");
        assert_eq!(idx.lease(&pro, &[], None, now), Ok(0));
        let midnight = next_pacific_midnight(now);
        assert_eq!(idx.lease(&pro, &[], None, now), Err(LeaseError::AllPaced { soonest: midnight, limit: "rpd" }));
        assert_eq!(idx.lease(&pro, &[], None, midnight), Ok(0));
    }

    #[test]
    fn a_held_key_waits_for_its_state_and_a_lost_answer_ends_the_hold() {
        let (mut idx, now) = index(1, Strategy::RoundRobin);
        let m = model("m");
        idx.hold(0, now);
        assert_eq!(idx.lease(&m, &[], None, now), Err(LeaseError::AllCooling { soonest: now + HOLD_LIMIT }));
        idx.sync(0, &KeyState::default(), now);
        assert_eq!(idx.lease(&m, &[], None, now), Ok(0));
        idx.hold(0, now);
        assert_eq!(idx.lease(&m, &[], None, now + HOLD_LIMIT), Ok(0));
    }

    #[test]
    fn weights_share_leases_in_every_strategy() {
        for strategy in [Strategy::RoundRobin, Strategy::Random, Strategy::LeastInFlight] {
            let (mut idx, now) = index(2, strategy);
            idx.set_weight(0, 3);
            let m = model("m");
            let mut counts = [0u32; 2];
            for _ in 0..4000 {
                let slot = idx.lease(&m, &[], None, now).unwrap();
                counts[slot as usize] += 1;
                idx.release(slot);
            }
            let share = f64::from(counts[0]) / 4000.0;
            assert!((share - 0.75).abs() < 0.75 * 0.05, "{strategy:?}: {counts:?}");
        }
    }

    #[test]
    fn least_in_flight_prefers_the_idle_key() {
        let (mut idx, now) = index(2, Strategy::LeastInFlight);
        let m = model("m");
        for _ in 0..5 {
            let _ = idx.lease(&m, &[1], None, now);
        }
        // Key 0 keeps 5 in flight, key 1 none (each pick is released): key 1
        // wins whenever it is one of the two candidates, 3 times in 4.
        let picks: Vec<_> = (0..40)
            .map(|_| {
                let slot = idx.lease(&m, &[], None, now).unwrap();
                idx.release(slot);
                slot
            })
            .collect();
        assert!(picks.iter().filter(|&&s| s == 1).count() > 22, "{picks:?}");
    }

    #[test]
    fn removed_keys_leave_every_model() {
        let (mut idx, now) = index(2, Strategy::RoundRobin);
        let m = model("m");
        idx.lease(&m, &[], None, now).unwrap();
        idx.remove(0);
        assert_eq!(idx.len(), 1);
        for _ in 0..4 {
            assert_eq!(idx.lease(&m, &[], None, now), Ok(1));
        }
    }

    #[test]
    fn persisted_cooldowns_are_restored_and_past_ones_ignored() {
        let now = SystemTime::now();
        let mut idx = ReadyIndex::new(Strategy::RoundRobin, HashMap::new());
        let m = model("m");
        idx.insert(0, &resting(&[(Some(&m), now + Duration::from_secs(9))]), now);
        idx.insert(1, &resting(&[(None, now - Duration::from_secs(9))]), now);
        assert_eq!(idx.lease(&m, &[], None, now), Ok(1));
        assert_eq!(idx.lease(&m, &[1], None, now), Err(LeaseError::AllTried));
    }
}
