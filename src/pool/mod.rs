//! The key pool: one `KeyActor` per key, the lease book (the ready index
//! behind the leases, under a short lock), one `PoolSupervisor` that owns
//! which keys exist, and health scans. Other code uses [`PoolHandle`] and
//! [`Lease`].

mod affinity;
mod book;
mod key_actor;
mod ready_index;
mod scan;
mod slot;
mod supervisor;

pub use key_actor::{KeyEvent, StateSink};
pub use ready_index::{LeaseError, PacingWait, ReadyIndex, SlotIndex};
pub use scan::{ScanError, ScanProgress, ScanReport, Scanner};
pub use slot::KeySlot;
pub use supervisor::{PoolMsg, PoolSupervisor, ScanGate, SupervisorArgs};

use crate::config::ModelLimits;
use crate::key_state::{DisableReason, KeySnapshot, ScanVerdict};
use crate::keys::{Fingerprint, KeyRecord};
use book::LeaseBook;
use key_actor::KeyMsg;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use std::collections::HashMap;
use std::sync::Arc;

/// The handle every other part of gemgate uses to talk to the pool.
#[derive(Clone)]
pub struct PoolHandle {
    supervisor: ActorRef<PoolMsg>,
    book: Arc<LeaseBook>,
    scan: Arc<ScanProgress>,
    scanner: Arc<Scanner>,
}

/// A key handed out for one attempt. Report how it went with
/// [`Lease::settle`]; a lease dropped unreported counts as abandoned.
pub struct Lease {
    slot: Arc<KeySlot>,
    book: Arc<LeaseBook>,
    settled: bool,
}

impl Lease {
    /// The leased key's slot.
    pub fn slot(&self) -> &Arc<KeySlot> {
        &self.slot
    }

    /// Reports the attempt's end and releases the lease.
    pub fn settle(mut self, event: KeyEvent) {
        self.send(event, true);
    }

    /// Reports the attempt's end but keeps the lease (the same key is retried).
    pub fn settle_and_keep(&mut self, event: KeyEvent) {
        self.book.settle(&self.slot, event, false);
    }

    fn send(&mut self, event: KeyEvent, release: bool) {
        if !self.settled {
            self.settled = true;
            self.book.settle(&self.slot, event, release);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.send(KeyEvent::Abandoned, true);
    }
}

/// Session affinity shared by replicas: the key a conversation last used,
/// by fingerprint (replicas number their slots differently).
pub trait SharedAffinity: Send + Sync {
    /// The key `session` last used on any replica; `None` when unknown or
    /// not answered within a few milliseconds.
    fn recall(&self, session: u64) -> futures_util::future::BoxFuture<'static, Option<Fingerprint>>;
    /// Tells the other replicas that `session` now uses `key` (queued, never waits).
    fn remember(&self, session: u64, key: Fingerprint);
}

impl PoolHandle {
    /// Starts the supervisor (and so every key actor).
    pub async fn start(args: SupervisorArgs) -> anyhow::Result<Self> {
        let scan = args.scanner.progress();
        let scanner = args.scanner.clone();
        let book = Arc::new(LeaseBook::new(args.strategy, args.affinity_ttl, args.limits.clone()));
        let (supervisor, _) = ractor::Actor::spawn(None, PoolSupervisor, (args, book.clone())).await?;
        Ok(Self { supervisor, book, scan, scanner })
    }

    /// Shares session affinity with the other replicas through `shared`.
    pub fn share_affinity(&self, shared: Arc<dyn SharedAffinity>) {
        self.book.share_affinity(shared);
    }

    /// Leases a key for a request's first attempt: [`PoolHandle::lease`],
    /// but with affinity shared between replicas, a session this replica has
    /// not seen is first looked up among the others (within a few
    /// milliseconds), and a session that starts or moves here is told to them.
    pub async fn lease_first(&self, model: &Arc<str>, session: Option<u64>) -> Result<Lease, LeaseError> {
        let Some((session, shared)) = session.zip(self.book.shared_affinity()) else {
            return self.lease(model, &[], session);
        };
        let Some(known) = self.book.affinity_of(session) else { return self.lease(model, &[], Some(session)) };
        let mut before = known;
        if known.is_none()
            && let Some(key) = shared.recall(session).await
        {
            self.book.adopt_affinity(session, key);
            before = self.book.affinity_of(session).flatten();
        }
        let lease = self.lease(model, &[], Some(session))?;
        if before != Some(lease.slot.index) {
            shared.remember(session, lease.slot.record.fingerprint);
        }
        Ok(lease)
    }

    /// Leases a key for `model`, skipping the slots in `exclude`; the key
    /// `session` last used when it is usable.
    pub fn lease(&self, model: &Arc<str>, exclude: &[SlotIndex], session: Option<u64>) -> Result<Lease, LeaseError> {
        let slot = self.book.lease(model, exclude, session)?;
        Ok(Lease { slot, book: self.book.clone(), settled: false })
    }

    /// Every key in the pool.
    pub fn slots(&self) -> Vec<Arc<KeySlot>> {
        self.book.slots()
    }

    /// Keys held back by a limit declared in config (`[models]`) right now.
    pub fn pacing(&self) -> Vec<(Fingerprint, PacingWait)> {
        self.book.pacing()
    }

    /// Waits until the actors of these keys have handled every event and
    /// change sent before this call: their published state is then current.
    pub async fn settled(&self, fingerprints: Vec<Fingerprint>) {
        let waits: Vec<_> = self
            .book
            .actors(&fingerprints)
            .into_iter()
            .map(|actor| {
                let (port, answered) = tokio::sync::oneshot::channel();
                let _ = actor.cast(KeyMsg::Barrier(port.into()));
                answered
            })
            .collect();
        for answered in waits {
            let _ = answered.await;
        }
    }

    /// Takes a key's disable and rests as another replica decided them.
    pub fn adopt(&self, fingerprint: Fingerprint, state: crate::key_state::KeyState) {
        if let Some(actor) = self.book.actors(&[fingerprint]).into_iter().next() {
            let _ = actor.cast(KeyMsg::Adopt(state));
        }
    }

    /// Disables (`Some`) or enables (`None`) a key; false when it is not in the pool.
    pub fn set_disabled(&self, fingerprint: Fingerprint, reason: Option<DisableReason>) -> bool {
        self.set_disabled_many(vec![fingerprint], reason).is_empty()
    }

    /// Disables (`Some`) or enables (`None`) keys; returns the fingerprints
    /// that are not in the pool.
    pub fn set_disabled_many(&self, fingerprints: Vec<Fingerprint>, reason: Option<DisableReason>) -> Vec<Fingerprint> {
        self.book.set_disabled(fingerprints, reason)
    }

    /// Starts a health scan of every key.
    pub async fn start_scan(&self) -> Result<(), ScanError> {
        match self.supervisor.call(|reply| PoolMsg::StartScan { reply }, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Ok(()),
        }
    }

    /// Checks the keys with these fingerprints now and applies the verdicts;
    /// fingerprints not in the pool are left out of the answer.
    pub async fn verify(&self, fingerprints: &[Fingerprint]) -> Vec<(Arc<KeySlot>, ScanVerdict)> {
        let wanted: std::collections::HashSet<&Fingerprint> = fingerprints.iter().collect();
        let slots: Vec<Arc<KeySlot>> =
            self.slots().into_iter().filter(|slot| wanted.contains(&slot.record.fingerprint)).collect();
        self.scanner.verify(slots, &self.supervisor).await
    }

    /// Attempts in flight on every key.
    pub fn in_flight(&self) -> u64 {
        self.book.in_flight()
    }

    /// Progress of the current or last scan.
    pub fn scan_report(&self) -> ScanReport {
        self.scan.report()
    }

    /// Makes the pool exactly `keys` (a key joining starts from its stored
    /// state in `persisted`); returns (added, removed).
    pub async fn replace_keys(
        &self,
        keys: Vec<KeyRecord>,
        persisted: HashMap<Fingerprint, KeySnapshot>,
    ) -> (usize, usize) {
        match self.supervisor.call(|reply| PoolMsg::ReplaceKeys { keys, persisted, reply }, None).await {
            Ok(CallResult::Success(counts)) => counts,
            _ => (0, 0),
        }
    }

    /// `replicas` (this one included) use the same keys: each paces them to
    /// its share of the limits `[models]` declares, so together they keep to
    /// them without a Redis call per lease.
    pub fn share_pacing(&self, replicas: u32) {
        self.book.share_pacing(replicas);
    }

    /// Applies a new strategy, session affinity and per-model limits.
    pub fn reconfigure(&self, pool: &crate::config::PoolConfig, limits: HashMap<String, ModelLimits>) {
        self.book.reconfigure(pool.strategy, pool.affinity_ttl(), limits);
    }

    /// Stops the supervisor and every key actor, waiting for them to end.
    pub async fn stop(&self) {
        self.supervisor.stop_and_wait(None, None).await.ok();
    }
}
