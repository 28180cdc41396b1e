//! PoolSupervisor: owns the pool's shape. It adds and removes keys in the
//! lease book, spawns one KeyActor per key (restarting any that panics), and
//! runs health scans, applying their verdicts through the book. Leases and
//! outcomes do not pass through it (see `book.rs`).

use super::book::LeaseBook;
use super::key_actor::{KeyActor, KeyActorArgs, StateSink};
use super::ready_index::SlotIndex;
use super::scan::{ScanError, Scanner};
use super::slot::KeySlot;
use crate::config::{ModelLimits, Strategy};
use crate::key_state::{KeySnapshot, ScanVerdict};
use crate::keys::{Fingerprint, KeyRecord};
use crate::store::StoreHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Messages the supervisor handles. Use [`super::PoolHandle`] rather than these.
pub enum PoolMsg {
    /// A health scan's verdict for one key.
    ScanVerdict {
        /// The key.
        slot: Arc<KeySlot>,
        /// What the policy made of the scan.
        verdict: ScanVerdict,
    },
    /// Start a health scan of every key.
    StartScan {
        /// Ok when started, Err when one is running.
        reply: RpcReplyPort<Result<(), ScanError>>,
    },
    /// The timer of periodic scans.
    PeriodicScan,
    /// The scan gate let this replica run the periodic scan.
    ScanGranted,
    /// Make the pool exactly these keys (a key file changed).
    ReplaceKeys {
        /// The new key set.
        keys: Vec<KeyRecord>,
        /// Stored state of keys that may (re)join, by fingerprint.
        persisted: HashMap<Fingerprint, KeySnapshot>,
        /// (added, removed).
        reply: RpcReplyPort<(usize, usize)>,
    },
}

/// Start-up arguments of the supervisor.
pub struct SupervisorArgs {
    /// The keys to start with.
    pub keys: Vec<KeyRecord>,
    /// State persisted by earlier runs, by fingerprint.
    pub persisted: HashMap<Fingerprint, KeySnapshot>,
    /// Lease strategy.
    pub strategy: Strategy,
    /// How long a session keeps its key (`None`: affinity off).
    pub affinity_ttl: Option<Duration>,
    /// Per-model limits for self-pacing.
    pub limits: HashMap<String, ModelLimits>,
    /// Where key state is persisted.
    pub store: StoreHandle,
    /// Runs health scans.
    pub scanner: Arc<Scanner>,
    /// Seconds between periodic scans (0: none).
    pub scan_interval: Duration,
    /// Scan once at start.
    pub scan_on_start: bool,
    /// Where keys' decided disables and rests are shared (a cluster), if anywhere.
    pub sink: Option<StateSink>,
    /// Asked before each periodic scan (a cluster lets one replica scan per interval).
    pub scan_gate: Option<ScanGate>,
}

/// Whether this replica runs the periodic scan now; given the interval.
pub type ScanGate = Arc<dyn Fn(Duration) -> futures_util::future::BoxFuture<'static, bool> + Send + Sync>;

/// The supervisor's state.
pub struct SupervisorState {
    book: Arc<LeaseBook>,
    by_actor: HashMap<ActorId, SlotIndex>,
    persisted: HashMap<Fingerprint, KeySnapshot>,
    store: StoreHandle,
    scanner: Arc<Scanner>,
    sink: Option<StateSink>,
    scan_gate: Option<ScanGate>,
    scan_interval: Duration,
}

/// The PoolSupervisor behaviour.
pub struct PoolSupervisor;

impl Actor for PoolSupervisor {
    type Msg = PoolMsg;
    type State = SupervisorState;
    type Arguments = (SupervisorArgs, Arc<LeaseBook>);

    async fn pre_start(
        &self,
        myself: ActorRef<PoolMsg>,
        (args, book): (SupervisorArgs, Arc<LeaseBook>),
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            book,
            by_actor: HashMap::with_capacity(args.keys.len()),
            persisted: args.persisted,
            store: args.store,
            scanner: args.scanner,
            sink: args.sink,
            scan_gate: args.scan_gate,
            scan_interval: args.scan_interval,
        };
        for record in args.keys {
            state.add_key(&myself, record).await?;
        }
        state.persisted = HashMap::new();
        if !args.scan_interval.is_zero() {
            myself.send_interval(args.scan_interval, || PoolMsg::PeriodicScan);
        }
        if args.scan_on_start {
            let _ = myself.cast(PoolMsg::PeriodicScan);
        }
        Ok(state)
    }

    async fn post_stop(&self, _: ActorRef<PoolMsg>, state: &mut SupervisorState) -> Result<(), ActorProcessingErr> {
        state.book.close();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<PoolMsg>,
        message: PoolMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PoolMsg::ScanVerdict { slot, verdict } => state.book.apply_scan(&slot, verdict),
            PoolMsg::StartScan { reply } => {
                let _ = reply.send(state.start_scan(&myself));
            }
            PoolMsg::PeriodicScan => match &state.scan_gate {
                // The gate may ask Redis: never from the supervisor's own turn.
                Some(gate) => {
                    let asked = gate(state.scan_interval);
                    tokio::spawn(async move {
                        if asked.await {
                            let _ = myself.cast(PoolMsg::ScanGranted);
                        }
                    });
                }
                None => state.periodic_scan(&myself),
            },
            PoolMsg::ScanGranted => state.periodic_scan(&myself),
            PoolMsg::ReplaceKeys { keys, persisted, reply } => {
                state.persisted = persisted;
                let counts = state.replace_keys(&myself, keys).await?;
                state.persisted = HashMap::new();
                let _ = reply.send(counts);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<PoolMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event
            && let Some(slot) = state.by_actor.remove(&cell.get_id())
            && let Some(key) = state.book.slot(slot)
        {
            tracing::error!(key = %key.record.fingerprint, "key actor failed ({error}); restarting it from its last state");
            state.spawn_actor(&myself, key).await?;
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn add_key(&mut self, myself: &ActorRef<PoolMsg>, record: KeyRecord) -> Result<(), ActorProcessingErr> {
        let snapshot = self.persisted.remove(&record.fingerprint).unwrap_or_default();
        let slot = self.book.add(record, &snapshot);
        self.spawn_actor(myself, slot).await
    }

    async fn spawn_actor(&mut self, myself: &ActorRef<PoolMsg>, slot: Arc<KeySlot>) -> Result<(), ActorProcessingErr> {
        let index = slot.index;
        let args = KeyActorArgs { slot, book: self.book.clone(), store: self.store.clone(), sink: self.sink.clone() };
        let (actor, _) = Actor::spawn_linked(None, KeyActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), index);
        self.book.set_actor(index, actor);
        Ok(())
    }

    fn periodic_scan(&self, myself: &ActorRef<PoolMsg>) {
        if let Err(err) = self.start_scan(myself) {
            tracing::debug!("periodic scan skipped: {err}");
        }
    }

    fn start_scan(&self, myself: &ActorRef<PoolMsg>) -> Result<(), ScanError> {
        self.scanner.start(self.book.slots(), myself.clone())
    }

    async fn replace_keys(
        &mut self,
        myself: &ActorRef<PoolMsg>,
        keys: Vec<KeyRecord>,
    ) -> Result<(usize, usize), ActorProcessingErr> {
        let wanted: HashMap<Fingerprint, KeyRecord> = keys.into_iter().map(|r| (r.fingerprint, r)).collect();
        let present: HashSet<Fingerprint> = self.book.fingerprints().into_iter().collect();
        let mut removed = 0;
        for fingerprint in present.iter().filter(|fp| !wanted.contains_key(fp)) {
            removed += 1;
            if let Some(actor) = self.book.remove(fingerprint) {
                self.by_actor.remove(&actor.get_id());
                actor.stop(None);
            }
        }
        let mut added = 0;
        for (fingerprint, record) in wanted {
            let kept = present.contains(&fingerprint).then(|| self.book.find(&fingerprint)).flatten();
            if let Some(kept) = kept.as_ref().filter(|kept| kept.record.proxy == record.proxy) {
                // A key that stays may have a new weight.
                self.book.set_weight(&kept.record.fingerprint, record.weight);
            } else {
                if let Some(kept) = kept {
                    // A new proxy pin: the key starts again in a new slot, from its state now.
                    self.persisted.insert(fingerprint, kept.snapshot());
                    if let Some(actor) = self.book.remove(&fingerprint) {
                        self.by_actor.remove(&actor.get_id());
                        actor.stop(None);
                    }
                } else {
                    added += 1;
                }
                self.add_key(myself, record).await?;
            }
        }
        Ok((added, removed))
    }
}
