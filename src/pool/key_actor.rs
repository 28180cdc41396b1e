//! KeyActor: one per upstream key, and the only writer of that key's truth
//! (disabled or not, rests per model, counters), its rest timers and its
//! persistence. It hears every outcome from the lease book; whenever the
//! key's disable or rests change, it gives the book the new state, and the
//! book's ready index copies it (holding the key meanwhile).

use super::book::LeaseBook;
use super::slot::KeySlot;
use crate::key_state::{CooldownEntry, DisableReason, Disabled, KeySnapshot, KeyState};
use crate::keys::Fingerprint;
use crate::store::StoreHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What happened on one attempt, as the key actor needs it.
#[derive(Clone, Debug)]
pub enum KeyEvent {
    /// The attempt succeeded.
    Succeeded {
        /// Time to the end of the reply.
        latency: Duration,
        /// Tokens from `usageMetadata`.
        tokens: u64,
    },
    /// The attempt failed.
    Failed {
        /// Time until the failure was known.
        latency: Duration,
        /// Charge it to the key's failure counters.
        charge: bool,
        /// In words, without the key.
        error: String,
        /// Rest ordered by the policy (already resolved to an end time).
        cooldown: Option<CooldownEntry>,
        /// Disable ordered by the policy.
        disable: Option<DisableReason>,
    },
    /// The client went away; nothing is the key's fault.
    Abandoned,
}

/// Messages a KeyActor handles.
#[derive(Debug)]
pub enum KeyMsg {
    /// An attempt with this key ended.
    Event(KeyEvent),
    /// A cooldown timer fired.
    CooldownEnded {
        /// Which rest (model or all).
        model: Option<Arc<str>>,
        /// The end it was set for (a later, longer rest is left alone).
        until: SystemTime,
    },
    /// Disable (with a reason) or enable (None) the key.
    SetDisabled(Option<DisableReason>),
    /// Answers once every message sent before it has been handled.
    Barrier(ractor::RpcReplyPort<()>),
    /// Another replica changed the key's disable or rests: take its state
    /// (and do not share it back).
    Adopt(KeyState),
}

/// Told each disable or rest a key's actor decides (not the ones it adopts
/// from elsewhere): how a cluster shares them with other replicas.
pub type StateSink = Arc<dyn Fn(Fingerprint, KeyState, SystemTime) + Send + Sync>;

/// Start-up arguments of a KeyActor.
pub struct KeyActorArgs {
    /// The key's shared slot (its published state is the starting state).
    pub slot: Arc<KeySlot>,
    /// The lease book, told when the key's state changes.
    pub book: Arc<LeaseBook>,
    /// Where state changes are persisted.
    pub store: StoreHandle,
    /// Where decided disables and rests are shared, if anywhere.
    pub sink: Option<StateSink>,
}

/// The actor's state: the key's truth, of which the slot holds a published copy.
pub struct KeyActorState {
    slot: Arc<KeySlot>,
    book: Arc<LeaseBook>,
    store: StoreHandle,
    current: KeySnapshot,
    recent: VecDeque<SystemTime>,
    /// Disabled, cooldowns or last error changed since the last publish.
    state_changed: bool,
    /// The book's index must hear the key's state (it changed, or the
    /// book holds the key until told).
    tell_index: bool,
    /// Where decided disables and rests are shared.
    sink: Option<StateSink>,
    /// The disable or rests changed by this actor's own decision since the last publish.
    share: bool,
}

/// The KeyActor behaviour (stateless; state is in [`KeyActorState`]).
pub struct KeyActor;

const RECENT_WINDOW: Duration = Duration::from_secs(600);

impl Actor for KeyActor {
    type Msg = KeyMsg;
    type State = KeyActorState;
    type Arguments = KeyActorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<KeyMsg>,
        args: KeyActorArgs,
    ) -> Result<KeyActorState, ActorProcessingErr> {
        let current = args.slot.snapshot();
        let now = SystemTime::now();
        for cooldown in current.active_cooldowns(now) {
            schedule_end(&myself, cooldown, now);
        }
        Ok(KeyActorState {
            slot: args.slot,
            book: args.book,
            store: args.store,
            current,
            recent: VecDeque::new(),
            state_changed: false,
            tell_index: false,
            sink: args.sink,
            share: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<KeyMsg>,
        message: KeyMsg,
        state: &mut KeyActorState,
    ) -> Result<(), ActorProcessingErr> {
        let now = SystemTime::now();
        match message {
            KeyMsg::Event(event) => state.apply_event(&myself, event, now),
            KeyMsg::CooldownEnded { model, until } => {
                let before = state.current.cooldowns.len();
                state.current.cooldowns.retain(|c| !(c.model == model && c.until <= until));
                if state.current.cooldowns.len() == before {
                    return Ok(());
                }
                state.state_changed = true;
                state.tell_index = true;
            }
            KeyMsg::Barrier(reply) => {
                let _ = reply.send(());
                return Ok(());
            }
            KeyMsg::SetDisabled(reason) => {
                state.current.disabled = reason.map(|reason| Disabled { reason, since: now });
                if reason.is_none() {
                    state.current.consecutive_failures = 0;
                }
                state.state_changed = true;
                state.tell_index = true;
                state.share = true;
            }
            KeyMsg::Adopt(shared) => {
                if state.current.disabled == shared.disabled && state.current.cooldowns == shared.cooldowns {
                    return Ok(());
                }
                if state.current.disabled.is_some() && shared.disabled.is_none() {
                    state.current.consecutive_failures = 0;
                }
                state.current.disabled = shared.disabled;
                for cooldown in shared.cooldowns.iter().filter(|c| !state.current.cooldowns.contains(c)) {
                    schedule_end(&myself, cooldown, now);
                }
                state.current.cooldowns = shared.cooldowns;
                state.state_changed = true;
                state.tell_index = true;
            }
        }
        state.publish();
        Ok(())
    }
}

impl KeyActorState {
    fn apply_event(&mut self, myself: &ActorRef<KeyMsg>, event: KeyEvent, now: SystemTime) {
        let snap = &mut self.current;
        match event {
            KeyEvent::Succeeded { latency, tokens } => {
                snap.requests += 1;
                snap.successes += 1;
                snap.consecutive_failures = 0;
                snap.latency_ms_total += latency.as_millis() as u64;
                snap.tokens += tokens;
                snap.last_used = Some(now);
                snap.outcomes.record(false, now);
            }
            KeyEvent::Failed { latency, charge, error, cooldown, disable } => {
                // The book held the key for these; it waits for the answer.
                self.tell_index |= cooldown.is_some() || disable.is_some();
                snap.requests += 1;
                snap.latency_ms_total += latency.as_millis() as u64;
                snap.last_used = Some(now);
                if charge {
                    snap.failures += 1;
                    snap.consecutive_failures += 1;
                    snap.last_error = Some(error);
                    snap.outcomes.record(true, now);
                    snap.last_failure = Some(now);
                    self.recent.push_back(now);
                    self.state_changed = true;
                }
                if let Some(cooldown) = cooldown {
                    schedule_end(myself, &cooldown, now);
                    snap.cooldowns.retain(|c| !(c.model == cooldown.model && c.until <= cooldown.until));
                    if !snap.cooldowns.iter().any(|c| c.model == cooldown.model) {
                        snap.cooldowns.push(cooldown);
                    }
                    self.state_changed = true;
                    self.share = true;
                }
                if let Some(reason) = disable
                    && snap.disabled.is_none()
                {
                    snap.disabled = Some(Disabled { reason, since: now });
                    self.state_changed = true;
                    self.share = true;
                }
            }
            KeyEvent::Abandoned => return,
        }
        while self.recent.front().is_some_and(|&t| t + RECENT_WINDOW <= now) {
            self.recent.pop_front();
        }
        self.current.recent_failures = self.recent.len() as u32;
    }

    /// Publishes counters (atomics, no allocation), state when it changed,
    /// and marks the key for the store's next flush.
    fn publish(&mut self) {
        self.slot.store_counters(&self.current);
        let state_changed = std::mem::take(&mut self.state_changed);
        // The state becomes visible under the store's queue lock, as the key
        // is queued: whoever sees the new state and then flushes has it written.
        let (slot, current) = (&self.slot, &self.current);
        self.store.save_key_while(slot.clone(), state_changed, || {
            if state_changed {
                slot.store_state(current.state());
            }
        });
        if std::mem::take(&mut self.tell_index) {
            self.book.sync(self.slot.index, &self.current.state());
        }
        if std::mem::take(&mut self.share)
            && let Some(sink) = &self.sink
        {
            sink(self.slot.record.fingerprint, self.current.state(), SystemTime::now());
        }
    }
}

fn schedule_end(myself: &ActorRef<KeyMsg>, cooldown: &CooldownEntry, now: SystemTime) {
    let wait = cooldown.until.duration_since(now).unwrap_or_default();
    let (model, until) = (cooldown.model.clone(), cooldown.until);
    myself.send_after(wait, move || KeyMsg::CooldownEnded { model, until });
}
