//! PoolSupervisor: the one actor that hands out leases. It keeps the ready
//! index, spawns one KeyActor per key (restarting any that panics), forwards
//! outcomes to the key's actor (holding the key out of leases when the
//! outcome changes its state, until the actor sends that state back), and
//! starts health scans.

use super::affinity::Affinity;
use super::key_actor::{KeyActor, KeyActorArgs, KeyEvent, KeyMsg};
use super::ready_index::{LeaseError, PacingWait, ReadyIndex, SlotIndex};
use super::scan::{ScanError, Scanner};
use super::slot::KeySlot;
use crate::config::{ModelLimits, Strategy};
use crate::key_state::{DisableReason, KeySnapshot, KeyState, ScanVerdict};
use crate::keys::{Fingerprint, KeyRecord};
use crate::store::StoreHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Messages the supervisor handles. Use [`super::PoolHandle`] rather than these.
pub enum PoolMsg {
    /// Lease a key for `model`, skipping `exclude`.
    Lease {
        /// The model of the request.
        model: Arc<str>,
        /// Slots this request already tried.
        exclude: Vec<SlotIndex>,
        /// The request's conversation, for session affinity.
        session: Option<u64>,
        /// Where the lease goes.
        reply: RpcReplyPort<Result<Arc<KeySlot>, LeaseError>>,
    },
    /// A leased attempt ended.
    Settle {
        /// The key.
        slot: Arc<KeySlot>,
        /// What happened.
        event: KeyEvent,
        /// Whether the lease ends (false: the same key is retried).
        release: bool,
    },
    /// A KeyActor's state after its disable or rests changed (or after an
    /// outcome the supervisor held the key for).
    KeyChanged {
        /// The key.
        slot: SlotIndex,
        /// Its state now.
        state: KeyState,
    },
    /// A health scan's verdict for one key.
    ScanVerdict {
        /// The key.
        slot: Arc<KeySlot>,
        /// What the policy made of the scan.
        verdict: ScanVerdict,
    },
    /// Disable (Some) or enable (None) keys by fingerprint; replies with
    /// the fingerprints not in the pool.
    SetDisabled {
        /// The keys.
        fingerprints: Vec<Fingerprint>,
        /// The reason, or None to enable.
        reason: Option<DisableReason>,
        /// The fingerprints not found.
        reply: RpcReplyPort<Vec<Fingerprint>>,
    },
    /// Start a health scan of every key.
    StartScan {
        /// Ok when started, Err when one is running.
        reply: RpcReplyPort<Result<(), ScanError>>,
    },
    /// The timer of periodic scans.
    PeriodicScan,
    /// Make the pool exactly these keys (a key file changed).
    ReplaceKeys {
        /// The new key set.
        keys: Vec<KeyRecord>,
        /// Stored state of keys that may (re)join, by fingerprint.
        persisted: HashMap<Fingerprint, KeySnapshot>,
        /// (added, removed).
        reply: RpcReplyPort<(usize, usize)>,
    },
    /// Attempts in flight on every key.
    InFlight {
        /// The count.
        reply: RpcReplyPort<u64>,
    },
    /// Answers once the actors of these keys have handled everything sent
    /// to them before (through the supervisor, which forwards in order).
    Barrier {
        /// The keys.
        fingerprints: Vec<Fingerprint>,
        /// Answered when they are all through.
        reply: RpcReplyPort<()>,
    },
    /// Keys held back by declared limits now, with how and until when.
    Pacing {
        /// The waits.
        reply: RpcReplyPort<Vec<(Fingerprint, PacingWait)>>,
    },
    /// Every key currently in the pool.
    Slots {
        /// The slots.
        reply: RpcReplyPort<Vec<Arc<KeySlot>>>,
    },
    /// New strategy and model limits (a config reload).
    Reconfigure {
        /// Strategy.
        strategy: Strategy,
        /// How long a session keeps its key (`None`: affinity off).
        affinity_ttl: Option<Duration>,
        /// Per-model limits.
        limits: HashMap<String, ModelLimits>,
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
}

/// The supervisor's state.
pub struct SupervisorState {
    slots: Vec<Option<Arc<KeySlot>>>,
    actors: Vec<Option<ActorRef<KeyMsg>>>,
    by_fingerprint: HashMap<Fingerprint, SlotIndex>,
    by_actor: HashMap<ActorId, SlotIndex>,
    index: ReadyIndex,
    affinity: Affinity,
    persisted: HashMap<Fingerprint, KeySnapshot>,
    store: StoreHandle,
    scanner: Arc<Scanner>,
}

/// The PoolSupervisor behaviour.
pub struct PoolSupervisor;

impl Actor for PoolSupervisor {
    type Msg = PoolMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PoolMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            slots: Vec::with_capacity(args.keys.len()),
            actors: Vec::with_capacity(args.keys.len()),
            by_fingerprint: HashMap::with_capacity(args.keys.len()),
            by_actor: HashMap::with_capacity(args.keys.len()),
            index: ReadyIndex::new(args.strategy, args.limits),
            affinity: Affinity::new(args.affinity_ttl, std::time::Instant::now()),
            persisted: args.persisted,
            store: args.store,
            scanner: args.scanner,
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

    async fn handle(
        &self,
        myself: ActorRef<PoolMsg>,
        message: PoolMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let now = SystemTime::now();
        match message {
            PoolMsg::Lease { model, exclude, session, reply } => {
                let instant = std::time::Instant::now();
                let prefer = state.affinity.preferred(session, instant);
                let leased = state.index.lease(&model, &exclude, prefer, now);
                if let Ok(slot) = leased {
                    state.affinity.remember(session, slot, instant);
                }
                let _ = reply.send(leased.and_then(|slot| state.slot(slot).ok_or(LeaseError::Unavailable)));
            }
            PoolMsg::Settle { slot, event, release } => state.settle(slot, event, release, now),
            PoolMsg::KeyChanged { slot, state: key_state } => state.index.sync(slot, &key_state, now),
            PoolMsg::ScanVerdict { slot, verdict } => state.apply_scan(&slot, verdict, now),
            PoolMsg::SetDisabled { fingerprints, reason, reply } => {
                let mut missing = Vec::new();
                for fingerprint in fingerprints {
                    match state.by_fingerprint.get(&fingerprint).copied() {
                        Some(slot) => state.set_disabled(slot, reason, now),
                        None => missing.push(fingerprint),
                    }
                }
                let _ = reply.send(missing);
            }
            PoolMsg::StartScan { reply } => {
                let _ = reply.send(state.start_scan(&myself));
            }
            PoolMsg::PeriodicScan => {
                if let Err(err) = state.start_scan(&myself) {
                    tracing::debug!("periodic scan skipped: {err}");
                }
            }
            PoolMsg::ReplaceKeys { keys, persisted, reply } => {
                state.persisted = persisted;
                let counts = state.replace_keys(&myself, keys).await?;
                state.persisted = HashMap::new();
                let _ = reply.send(counts);
            }
            PoolMsg::InFlight { reply } => {
                let _ = reply.send(state.index.in_flight_total());
            }
            PoolMsg::Barrier { fingerprints, reply } => {
                // Each actor answers its own barrier; a task waits for all of them.
                let waits: Vec<_> = fingerprints
                    .iter()
                    .filter_map(|fp| state.by_fingerprint.get(fp).and_then(|&slot| state.actor(slot)))
                    .map(|actor| {
                        let (port, answered) = tokio::sync::oneshot::channel();
                        let _ = actor.cast(KeyMsg::Barrier(port.into()));
                        answered
                    })
                    .collect();
                tokio::spawn(async move {
                    for answered in waits {
                        let _ = answered.await;
                    }
                    let _ = reply.send(());
                });
            }
            PoolMsg::Pacing { reply } => {
                let waits = state.index.pacing_waits(now);
                let named = waits
                    .into_iter()
                    .filter_map(|(slot, wait)| state.slot(slot).map(|s| (s.record.fingerprint, wait)))
                    .collect();
                let _ = reply.send(named);
            }
            PoolMsg::Slots { reply } => {
                let _ = reply.send(state.slots.iter().flatten().cloned().collect());
            }
            PoolMsg::Reconfigure { strategy, affinity_ttl, limits } => {
                state.index.reconfigure(strategy, limits);
                state.affinity.set_ttl(affinity_ttl);
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
            && let Some(key) = state.slot(slot)
        {
            tracing::error!(key = %key.record.fingerprint, "key actor failed ({error}); restarting it from its last state");
            state.spawn_actor(&myself, key).await?;
        }
        Ok(())
    }
}

impl SupervisorState {
    fn slot(&self, slot: SlotIndex) -> Option<Arc<KeySlot>> {
        self.slots.get(slot as usize).cloned().flatten()
    }

    fn actor(&self, slot: SlotIndex) -> Option<&ActorRef<KeyMsg>> {
        self.actors.get(slot as usize).and_then(Option::as_ref)
    }

    async fn add_key(&mut self, myself: &ActorRef<PoolMsg>, record: KeyRecord) -> Result<(), ActorProcessingErr> {
        let index = self.slots.len() as SlotIndex;
        let snapshot = self.persisted.remove(&record.fingerprint).unwrap_or_default();
        self.index.insert(index, &snapshot.state(), SystemTime::now());
        self.index.set_weight(index, record.weight);
        self.by_fingerprint.insert(record.fingerprint, index);
        let slot = Arc::new(KeySlot::new(index, record, &snapshot));
        self.slots.push(Some(slot.clone()));
        self.actors.push(None);
        self.spawn_actor(myself, slot).await
    }

    async fn spawn_actor(&mut self, myself: &ActorRef<PoolMsg>, slot: Arc<KeySlot>) -> Result<(), ActorProcessingErr> {
        let index = slot.index;
        let args = KeyActorArgs { slot, supervisor: myself.clone(), store: self.store.clone() };
        let (actor, _) = Actor::spawn_linked(None, KeyActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), index);
        self.actors[index as usize] = Some(actor);
        Ok(())
    }

    fn settle(&mut self, slot: Arc<KeySlot>, event: KeyEvent, release: bool, now: SystemTime) {
        let index = slot.index;
        if !self.slot(index).is_some_and(|current| Arc::ptr_eq(&current, &slot)) {
            return; // the key left the pool while the attempt ran
        }
        if release {
            self.index.release(index);
        }
        if let KeyEvent::Failed { cooldown, disable, .. } = &event
            && (cooldown.is_some() || disable.is_some())
        {
            self.index.hold(index, now);
        }
        if let Some(actor) = self.actor(index) {
            let _ = actor.cast(KeyMsg::Event(event));
        }
    }

    fn set_disabled(&mut self, slot: SlotIndex, reason: Option<DisableReason>, now: SystemTime) {
        // An enable shows when the actor answers; a disable holds the key at once.
        if reason.is_some() {
            self.index.hold(slot, now);
        }
        if let Some(actor) = self.actor(slot) {
            let _ = actor.cast(KeyMsg::SetDisabled(reason));
        }
    }

    fn apply_scan(&mut self, slot: &Arc<KeySlot>, verdict: ScanVerdict, now: SystemTime) {
        if !self.slot(slot.index).is_some_and(|current| Arc::ptr_eq(&current, slot)) {
            return;
        }
        let disabled = slot.disabled();
        match verdict {
            ScanVerdict::Alive => {
                // Only Google's verdicts end on a scan; an operator's or a policy's disable stays.
                if disabled.is_some_and(|d| d.reason.ends_on_scan()) {
                    tracing::info!(key = %slot.record.fingerprint, "health scan: key is alive again, re-enabled");
                    self.set_disabled(slot.index, None, now);
                }
            }
            ScanVerdict::Dead(reason) => {
                if disabled.is_none() {
                    tracing::warn!(key = %slot.record.fingerprint, reason = reason.as_str(), "health scan: key is dead, disabled");
                    self.set_disabled(slot.index, Some(reason), now);
                }
            }
            ScanVerdict::Unknown => {}
        }
    }

    fn start_scan(&self, myself: &ActorRef<PoolMsg>) -> Result<(), ScanError> {
        let slots: Vec<Arc<KeySlot>> = self.slots.iter().flatten().cloned().collect();
        self.scanner.start(slots, myself.clone())
    }

    async fn replace_keys(
        &mut self,
        myself: &ActorRef<PoolMsg>,
        keys: Vec<KeyRecord>,
    ) -> Result<(usize, usize), ActorProcessingErr> {
        let wanted: HashMap<Fingerprint, KeyRecord> = keys.into_iter().map(|r| (r.fingerprint, r)).collect();
        let gone: Vec<Fingerprint> =
            self.by_fingerprint.keys().filter(|fp| !wanted.contains_key(fp)).copied().collect();
        for fingerprint in &gone {
            if let Some(index) = self.by_fingerprint.remove(fingerprint) {
                self.index.remove(index);
                self.affinity.forget_slot(index);
                self.slots[index as usize] = None;
                if let Some(actor) = self.actors[index as usize].take() {
                    self.by_actor.remove(&actor.get_id());
                    actor.stop(None);
                }
            }
        }
        let mut added = 0;
        for (fingerprint, record) in wanted {
            match self.by_fingerprint.get(&fingerprint) {
                // A key that stays may have a new weight.
                Some(&index) => self.index.set_weight(index, record.weight),
                None => {
                    self.add_key(myself, record).await?;
                    added += 1;
                }
            }
        }
        Ok((added, gone.len()))
    }
}
