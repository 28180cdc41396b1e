//! The lease book: the slot table, each key's actor, the ready index and
//! session affinity behind one short lock. Requests lease and settle here
//! directly, on their own task, instead of queueing behind the supervisor:
//! two actor round trips per request (a wake-up of the supervisor and one of
//! the caller each) were most of the pool's cost under load, and one task
//! serialised every request. The supervisor still owns the pool's shape
//! (which keys exist, their actors, scans); it edits the book the same way.
//!
//! Order is kept as before: whatever the book sends a key's actor (an
//! outcome, a disable) is sent while the lock is held, so each actor hears
//! them in the order the book decided them.

use super::affinity::Affinity;
use super::key_actor::{KeyEvent, KeyMsg};
use super::ready_index::{LeaseError, PacingWait, ReadyIndex, SlotIndex};
use super::slot::KeySlot;
use crate::config::{ModelLimits, Strategy};
use crate::key_state::{DisableReason, KeySnapshot, KeyState, ScanVerdict};
use crate::keys::{Fingerprint, KeyRecord};
use ractor::ActorRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The pool's lease table, shared by the supervisor and every request.
pub struct LeaseBook {
    inner: Mutex<Book>,
    /// Session affinity shared by replicas (`[cluster]`), set once.
    shared_affinity: std::sync::OnceLock<Arc<dyn super::SharedAffinity>>,
}

struct Book {
    slots: Vec<Option<Arc<KeySlot>>>,
    actors: Vec<Option<ActorRef<KeyMsg>>>,
    by_fingerprint: HashMap<Fingerprint, SlotIndex>,
    index: ReadyIndex,
    affinity: Affinity,
    /// The pool stopped: no more leases.
    closed: bool,
}

impl LeaseBook {
    /// An empty book.
    pub fn new(strategy: Strategy, affinity_ttl: Option<Duration>, limits: HashMap<String, ModelLimits>) -> Self {
        let book = Book {
            slots: Vec::new(),
            actors: Vec::new(),
            by_fingerprint: HashMap::new(),
            index: ReadyIndex::new(strategy, limits),
            affinity: Affinity::new(affinity_ttl, Instant::now()),
            closed: false,
        };
        Self { inner: Mutex::new(book), shared_affinity: std::sync::OnceLock::new() }
    }

    /// Shares session affinity with other replicas through `shared` (once).
    pub fn share_affinity(&self, shared: Arc<dyn super::SharedAffinity>) {
        let _ = self.shared_affinity.set(shared);
    }

    /// The replicas' shared affinity, when affinity is on and shared.
    pub fn shared_affinity(&self) -> Option<&Arc<dyn super::SharedAffinity>> {
        self.shared_affinity.get()
    }

    /// The key `session` last used here, if remembered; `Some(None)` when
    /// affinity is on and it is not, `None` when affinity is off.
    pub fn affinity_of(&self, session: u64) -> Option<Option<SlotIndex>> {
        let mut book = self.lock();
        book.affinity.is_on().then(|| book.affinity.preferred(Some(session), Instant::now()))
    }

    /// Remembers that `session` used the key `key` on another replica.
    pub fn adopt_affinity(&self, session: u64, key: Fingerprint) {
        let mut book = self.lock();
        if let Some(&slot) = book.by_fingerprint.get(&key) {
            book.affinity.remember(Some(session), slot, Instant::now());
        }
    }

    // Nothing under the lock can leave the book half-changed in a way a later
    // lease could not live with, so a panic elsewhere does not stop the pool.
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases a key for `model`, skipping `exclude`: the key `session` last
    /// used when it is ready, else the strategy's pick.
    pub fn lease(
        &self,
        model: &Arc<str>,
        exclude: &[SlotIndex],
        session: Option<u64>,
    ) -> Result<Arc<KeySlot>, LeaseError> {
        let (now, instant) = (SystemTime::now(), Instant::now());
        let mut book = self.lock();
        if book.closed {
            return Err(LeaseError::Unavailable);
        }
        let prefer = book.affinity.preferred(session, instant);
        let leased = book.index.lease(model, exclude, prefer, now)?;
        book.affinity.remember(session, leased, instant);
        book.slot(leased).ok_or(LeaseError::Unavailable)
    }

    /// A leased attempt on `slot` ended with `event`; `release` ends the
    /// lease (false: the same key is tried again). An outcome that changes
    /// the key holds it out of leases until its actor sends the new state.
    pub fn settle(&self, slot: &Arc<KeySlot>, event: KeyEvent, release: bool) {
        let mut book = self.lock();
        if !book.slot(slot.index).is_some_and(|current| Arc::ptr_eq(&current, slot)) {
            return; // the key left the pool while the attempt ran
        }
        if release {
            book.index.release(slot.index);
        }
        if let KeyEvent::Failed { cooldown, disable, .. } = &event
            && (cooldown.is_some() || disable.is_some())
        {
            book.index.hold(slot.index, SystemTime::now());
        }
        if let Some(actor) = book.actor(slot.index) {
            let _ = actor.cast(KeyMsg::Event(event));
        }
    }

    /// Copies a key's state as its actor published it into the index (and
    /// ends the key's hold).
    pub fn sync(&self, slot: SlotIndex, state: &KeyState) {
        self.lock().index.sync(slot, state, SystemTime::now());
    }

    /// Disables (`Some`) or enables (`None`) keys; returns the ones not in
    /// the pool. A disable holds the key at once; an enable shows when the
    /// actor answers.
    pub fn set_disabled(&self, fingerprints: Vec<Fingerprint>, reason: Option<DisableReason>) -> Vec<Fingerprint> {
        let mut book = self.lock();
        let now = SystemTime::now();
        let mut missing = Vec::new();
        for fingerprint in fingerprints {
            match book.by_fingerprint.get(&fingerprint).copied() {
                Some(slot) => book.set_disabled(slot, reason, now),
                None => missing.push(fingerprint),
            }
        }
        missing
    }

    /// Applies a health scan's verdict to the key it was made for.
    pub fn apply_scan(&self, slot: &Arc<KeySlot>, verdict: ScanVerdict) {
        let mut book = self.lock();
        if !book.slot(slot.index).is_some_and(|current| Arc::ptr_eq(&current, slot)) {
            return;
        }
        let disabled = slot.disabled();
        let now = SystemTime::now();
        match verdict {
            ScanVerdict::Alive => {
                // Only Google's verdicts end on a scan; an operator's or a policy's disable stays.
                if disabled.is_some_and(|d| d.reason.ends_on_scan()) {
                    tracing::info!(key = %slot.record.fingerprint, "health scan: key is alive again, re-enabled");
                    book.set_disabled(slot.index, None, now);
                }
            }
            ScanVerdict::Dead(reason) => {
                if disabled.is_none() {
                    tracing::warn!(key = %slot.record.fingerprint, reason = reason.as_str(), "health scan: key is dead, disabled");
                    book.set_disabled(slot.index, Some(reason), now);
                }
            }
            ScanVerdict::Unknown => {}
        }
    }

    /// Adds a key at the next free position of the slot table, starting
    /// from `snapshot` (its actor follows with [`LeaseBook::set_actor`]).
    pub fn add(&self, record: KeyRecord, snapshot: &KeySnapshot) -> Arc<KeySlot> {
        let mut book = self.lock();
        let index = book.slots.len();
        let slot = Arc::new(KeySlot::new(index as SlotIndex, record, snapshot));
        let state = snapshot.state();
        book.by_fingerprint.insert(slot.record.fingerprint, slot.index);
        book.index.insert(slot.index, &state, SystemTime::now());
        book.index.set_weight(slot.index, slot.record.weight);
        book.slots.push(Some(slot.clone()));
        book.actors.push(None);
        slot
    }

    /// The actor now serving `slot` (first start, or a restart).
    pub fn set_actor(&self, slot: SlotIndex, actor: ActorRef<KeyMsg>) {
        if let Some(entry) = self.lock().actors.get_mut(slot as usize) {
            *entry = Some(actor);
        }
    }

    /// Removes a key; returns its actor, to be stopped.
    pub fn remove(&self, fingerprint: &Fingerprint) -> Option<ActorRef<KeyMsg>> {
        let mut book = self.lock();
        let slot = book.by_fingerprint.remove(fingerprint)?;
        book.index.remove(slot);
        book.affinity.forget_slot(slot);
        let position = slot as usize;
        if let Some(entry) = book.slots.get_mut(position) {
            *entry = None;
        }
        book.actors.get_mut(position).and_then(Option::take)
    }

    /// A key's new weight.
    pub fn set_weight(&self, fingerprint: &Fingerprint, weight: u32) {
        let mut book = self.lock();
        if let Some(&slot) = book.by_fingerprint.get(fingerprint) {
            book.index.set_weight(slot, weight);
        }
    }

    /// The key with this fingerprint.
    pub fn find(&self, fingerprint: &Fingerprint) -> Option<Arc<KeySlot>> {
        let book = self.lock();
        book.by_fingerprint.get(fingerprint).and_then(|&slot| book.slot(slot))
    }

    /// Fingerprints of every key in the pool.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.lock().by_fingerprint.keys().copied().collect()
    }

    /// The key at `slot`.
    pub fn slot(&self, slot: SlotIndex) -> Option<Arc<KeySlot>> {
        self.lock().slot(slot)
    }

    /// The actors of these keys (those in the pool).
    pub fn actors(&self, fingerprints: &[Fingerprint]) -> Vec<ActorRef<KeyMsg>> {
        let book = self.lock();
        fingerprints
            .iter()
            .filter_map(|fp| book.by_fingerprint.get(fp).and_then(|&slot| book.actor(slot)))
            .cloned()
            .collect()
    }

    /// Every key in the pool.
    pub fn slots(&self) -> Vec<Arc<KeySlot>> {
        self.lock().slots.iter().flatten().cloned().collect()
    }

    /// Attempts in flight on every key.
    pub fn in_flight(&self) -> u64 {
        self.lock().index.in_flight_total()
    }

    /// Keys held back by limits declared in `[models]` now.
    pub fn pacing(&self) -> Vec<(Fingerprint, PacingWait)> {
        let mut book = self.lock();
        let waits = book.index.pacing_waits(SystemTime::now());
        waits.into_iter().filter_map(|(slot, wait)| book.slot(slot).map(|s| (s.record.fingerprint, wait))).collect()
    }

    /// A new strategy, affinity and per-model limits (a config reload).
    pub fn reconfigure(
        &self,
        strategy: Strategy,
        affinity_ttl: Option<Duration>,
        limits: HashMap<String, ModelLimits>,
    ) {
        let mut book = self.lock();
        book.index.reconfigure(strategy, limits, SystemTime::now());
        book.affinity.set_ttl(affinity_ttl);
    }

    /// `replicas` use these keys: pace each to its share of declared limits.
    pub fn share_pacing(&self, replicas: u32) {
        self.lock().index.set_share(replicas, SystemTime::now());
    }

    /// No more leases: the pool is stopping.
    pub fn close(&self) {
        self.lock().closed = true;
    }
}

impl Book {
    fn slot(&self, slot: SlotIndex) -> Option<Arc<KeySlot>> {
        self.slots.get(slot as usize).cloned().flatten()
    }

    fn actor(&self, slot: SlotIndex) -> Option<&ActorRef<KeyMsg>> {
        self.actors.get(slot as usize).and_then(Option::as_ref)
    }

    fn set_disabled(&mut self, slot: SlotIndex, reason: Option<DisableReason>, now: SystemTime) {
        if reason.is_some() {
            self.index.hold(slot, now);
        }
        if let Some(actor) = self.actor(slot) {
            let _ = actor.cast(KeyMsg::SetDisabled(reason));
        }
    }
}
