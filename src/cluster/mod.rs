//! Several replicas as one pool, through Redis (`[cluster] redis_url`).
//!
//! What is shared now: each key's disable and rests. A key actor's own
//! decision goes to the sink this module gives the pool; a task writes it to
//! a Redis hash (the shared truth, one field per key) and publishes it on a
//! channel; every replica applies what it hears from the others
//! (`PoolHandle::adopt`), and reads the whole hash every `reconcile_secs`, so
//! a missed message heals. Conflicts resolve last writer wins, by the time of
//! the decision.
//!
//! Nothing on the request path waits for Redis: leases use the local state.
//! While Redis is down each replica goes on with its own view, queues its
//! decisions (the latest per key), and pushes them and reads the others'
//! when the link returns; `/readyz` and the admin say the link is down.

mod affinity;
mod fast;
mod limits;
mod slices;
mod wire;

use crate::config::ClusterConfig;
use crate::key_state::KeyState;
use crate::keys::Fingerprint;
use crate::pool::{PoolHandle, ScanGate, StateSink};
use futures_util::StreamExt;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use wire::SharedState;

/// Decisions queued for Redis at most; past that the oldest wait for the
/// reconcile (the queue keeps the latest per key, so this bounds keys).
const QUEUE: usize = 65_536;

/// The cluster link as the rest of gemgate sees it.
#[derive(Default)]
pub struct ClusterLink {
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Live replicas at the last heartbeat (0: not yet seen).
    replicas: AtomicU32,
    /// Where this replica's notices go out.
    notices: std::sync::OnceLock<mpsc::Sender<Notice>>,
}

/// What an operator changed on one replica that the others read again from
/// the shared store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Client keys (made, changed, revoked).
    Clients,
}

impl Notice {
    fn name(self) -> &'static str {
        match self {
            Self::Clients => "clients",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        (name == "clients").then_some(Self::Clients)
    }
}

impl ClusterLink {
    /// Live replicas as last seen, this one included (at least 1).
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Whether Redis answered the last command.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Tells the other replicas what changed here (never waits; a notice
    /// lost while Redis is away is healed by the reread on reconnect).
    pub fn announce(&self, notice: Notice) {
        if let Some(notices) = self.notices.get() {
            let _ = notices.try_send(notice);
        }
    }

    /// The last failure, in words (never the URL's password).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn set(&self, result: Result<(), String>) {
        let was_up = self.up.swap(result.is_ok(), Ordering::Relaxed);
        match result {
            Ok(()) if !was_up => tracing::info!("cluster: the Redis link is up"),
            Err(err) => {
                if was_up {
                    tracing::warn!("cluster: the Redis link is down ({err}); serving from this replica's view");
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(err);
                }
            }
            Ok(()) => {}
        }
    }
}

/// A running cluster membership.
pub struct Cluster {
    /// The link's state.
    pub link: Arc<ClusterLink>,
    /// Clients' limits, counted in Redis.
    pub limits: Arc<dyn crate::tenancy::SharedLimits>,
    /// What other replicas announced (and, after the link was down, a
    /// reread of everything): taken once by whoever applies it.
    pub heard: Mutex<Option<mpsc::Receiver<Notice>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The time of the newest decision made here or applied from elsewhere, per key.
type Known = Arc<Mutex<HashMap<Fingerprint, u64>>>;

/// This replica's decisions on their way to Redis: what [`Cluster::start`]
/// takes once the pool runs.
pub struct Decisions {
    queue: mpsc::Receiver<SharedState>,
    known: Known,
    /// This replica's name (its own messages come back on the channel).
    replica: String,
}

/// The sink a pool shares its keys' decisions through, and the receiving end.
/// A decision counts as known the moment it is made, so an older one from
/// another replica that arrives before it reaches Redis cannot undo it here.
pub fn sink() -> (StateSink, Decisions) {
    let (sender, queue) = mpsc::channel(QUEUE);
    let known = Known::default();
    let replica = wire::replica_id();
    let (noted, name) = (known.clone(), replica.clone());
    let sink: StateSink = Arc::new(move |fingerprint: Fingerprint, state: KeyState, at: SystemTime| {
        let shared = SharedState::new(&replica, fingerprint, &state, at);
        if let Ok(mut known) = noted.lock() {
            let entry = known.entry(fingerprint).or_insert(0);
            *entry = (*entry).max(shared.at_ms);
        }
        // Full: the reconcile carries it later; never block a key's actor.
        let _ = sender.try_send(shared);
    });
    (sink, Decisions { queue, known, replica: name })
}

/// Clients' limits counted in the Redis of `config` alone (without the rest
/// of a cluster): for tests and benchmarks of the counting itself.
pub fn redis_limits(
    config: &ClusterConfig,
) -> anyhow::Result<(Arc<dyn crate::tenancy::SharedLimits>, tokio::task::JoinHandle<()>)> {
    let (limits, settling) =
        limits::RedisLimits::start(fast::FastLink::start(redis_client(config)?, config), Arc::default());
    Ok((Arc::new(limits), settling))
}

/// A client for the Redis of `config` (it connects when first used).
fn redis_client(config: &ClusterConfig) -> anyhow::Result<redis::Client> {
    redis::Client::open(config.redis_url.as_str())
        .map_err(|_| anyhow::anyhow!("cluster.redis_url is not a Redis URL such as redis://127.0.0.1:6379"))
}

/// The gate before each periodic scan: one replica per interval takes a
/// lease in Redis (`SET NX PX`, 90% of the interval) and scans; the verdicts
/// reach the others as shared state. Without Redis every replica scans: a
/// scan is cheap, and skipping it could leave a dead key unseen.
pub fn scan_gate(config: &ClusterConfig) -> anyhow::Result<ScanGate> {
    let client = redis_client(config)?;
    let (lease, timeout, replica) = (
        format!("{}:scan_lease", config.namespace),
        Duration::from_millis(config.timeout_ms.max(1)),
        wire::replica_id(),
    );
    Ok(Arc::new(move |interval: Duration| {
        let (client, lease, replica) = (client.clone(), lease.clone(), replica.clone());
        Box::pin(async move {
            let held_ms = (interval.as_millis() as u64 * 9 / 10).max(1);
            let take = async {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let mut redis = client.get_multiplexed_async_connection_with_config(&config).await?;
                let taken: Option<String> = redis::cmd("SET")
                    .arg(&lease)
                    .arg(&replica)
                    .arg("NX")
                    .arg("PX")
                    .arg(held_ms)
                    .query_async(&mut redis)
                    .await?;
                Ok::<_, redis::RedisError>(taken.is_some())
            };
            take.await.unwrap_or(true)
        })
    }))
}

impl Cluster {
    /// Joins the cluster: pushes this replica's decisions, applies the others'.
    /// With `affinity_ttl`, session affinity is shared too.
    pub fn start(
        config: &ClusterConfig,
        affinity_ttl: Option<Duration>,
        pool: PoolHandle,
        decisions: Decisions,
    ) -> anyhow::Result<Self> {
        let client = redis_client(config)?;
        let link = Arc::new(ClusterLink::default());
        let (announce, announced) = mpsc::channel(64);
        let _ = link.notices.set(announce);
        let (tell, heard) = mpsc::channel(64);
        let fast = fast::FastLink::start(client.clone(), config);
        let shared = Arc::new(Shared {
            client,
            hash: format!("{}:key_state", config.namespace),
            replicas: format!("{}:replicas", config.namespace),
            channel: format!("{}:key_state:changes", config.namespace),
            notices: format!("{}:notices", config.namespace),
            heard: tell,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            replica: decisions.replica.clone(),
            known: decisions.known.clone(),
            pool: pool.clone(),
            link: link.clone(),
        });
        let reconcile = Duration::from_secs(config.reconcile_secs.max(1));
        let (limits, settling) = limits::RedisLimits::start(fast.clone(), link.clone());
        let mut tasks = vec![
            tokio::spawn(shared.clone().push(decisions.queue)),
            tokio::spawn(shared.clone().listen()),
            tokio::spawn(shared.clone().announce(announced)),
            tokio::spawn(shared.reconcile_every(reconcile)),
            settling,
        ];
        if let Some(ttl) = affinity_ttl {
            let (affinity, writing) = affinity::RedisAffinity::start(fast, ttl);
            pool.share_affinity(Arc::new(affinity));
            tasks.push(writing);
        }
        Ok(Self { link, limits: Arc::new(limits), heard: Mutex::new(Some(heard)), tasks })
    }
}

struct Shared {
    client: redis::Client,
    hash: String,
    /// Each replica's last heartbeat (a sorted set, scored by time).
    replicas: String,
    /// The channel of operators' notices (`<replica> <notice>`).
    notices: String,
    /// Notices heard from other replicas, for the app to apply.
    heard: mpsc::Sender<Notice>,
    channel: String,
    timeout: Duration,
    replica: String,
    /// The time of the newest decision applied or made, per key.
    known: Known,
    pool: PoolHandle,
    link: Arc<ClusterLink>,
}

impl Shared {
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(describe)
    }

    /// Whether `state` is newer than what this replica knows of its key (and
    /// then remembers it).
    fn newer(&self, state: &SharedState) -> bool {
        let Some(fingerprint) = state.fingerprint() else { return false };
        let Ok(mut known) = self.known.lock() else { return false };
        let entry = known.entry(fingerprint).or_insert(0);
        if state.at_ms <= *entry {
            return false;
        }
        *entry = state.at_ms;
        true
    }

    fn apply(&self, state: SharedState) {
        if state.replica == self.replica || !self.newer(&state) {
            return;
        }
        if let (Some(fingerprint), Some(key_state)) = (state.fingerprint(), state.key_state()) {
            self.pool.adopt(fingerprint, key_state);
        }
    }

    /// Writes this replica's decisions to the hash and the channel; while
    /// Redis is down keeps the latest per key and retries.
    async fn push(self: Arc<Self>, mut decisions: mpsc::Receiver<SharedState>) {
        let mut pending: HashMap<String, SharedState> = HashMap::new();
        let mut connection = None;
        loop {
            if pending.is_empty() {
                match decisions.recv().await {
                    Some(state) => {
                        pending.insert(state.fingerprint.clone(), state);
                    }
                    None => return,
                }
            }
            while let Ok(state) = decisions.try_recv() {
                pending.insert(state.fingerprint.clone(), state);
            }
            if connection.is_none() {
                match self.connection().await {
                    Ok(made) => connection = Some(made),
                    Err(err) => {
                        self.link.set(Err(err));
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                }
            }
            let Some(redis) = connection.as_mut() else { continue };
            let batch: Vec<SharedState> = pending.values().cloned().collect();
            let mut pipe = redis::pipe();
            for state in &batch {
                let json = state.to_json();
                pipe.hset(&self.hash, &state.fingerprint, &json).ignore();
                pipe.publish(&self.channel, &json).ignore();
            }
            match pipe.query_async::<()>(redis).await {
                Ok(()) => {
                    self.link.set(Ok(()));
                    for state in batch {
                        if pending.get(&state.fingerprint).is_some_and(|p| p.at_ms == state.at_ms) {
                            pending.remove(&state.fingerprint);
                        }
                    }
                }
                Err(err) => {
                    self.link.set(Err(describe(err)));
                    connection = None;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Applies what other replicas publish; resubscribes after a break and
    /// reconciles then (messages sent meanwhile were missed).
    async fn listen(self: Arc<Self>) {
        loop {
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await.map_err(describe)?;
                pubsub.subscribe(&self.channel).await.map_err(describe)?;
                pubsub.subscribe(&self.notices).await.map_err(describe)?;
                Ok::<_, String>(pubsub)
            };
            match tokio::time::timeout(self.timeout * 5, subscribed).await {
                Ok(Ok(pubsub)) => {
                    self.reconcile().await;
                    // Notices sent while this replica was not listening are lost: read again.
                    let _ = self.heard.try_send(Notice::Clients);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else { continue };
                        if message.get_channel_name() == self.notices {
                            self.heard_notice(&payload);
                        } else if let Some(state) = SharedState::from_json(&payload) {
                            self.apply(state);
                        }
                    }
                    self.link.set(Err("the subscription ended".into()));
                }
                Ok(Err(err)) => self.link.set(Err(err)),
                Err(_) => self.link.set(Err("Redis did not answer in time".into())),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A notice from another replica, passed on to the app.
    fn heard_notice(&self, payload: &str) {
        let Some((replica, name)) = payload.split_once(' ') else { return };
        if let Some(notice) = Notice::from_name(name).filter(|_| replica != self.replica) {
            let _ = self.heard.try_send(notice);
        }
    }

    /// Publishes this replica's notices.
    async fn announce(self: Arc<Self>, mut notices: mpsc::Receiver<Notice>) {
        while let Some(notice) = notices.recv().await {
            let message = format!("{} {}", self.replica, notice.name());
            let published = async {
                let mut redis = self.connection().await?;
                redis.publish::<_, _, ()>(&self.notices, message).await.map_err(describe)
            };
            if let Err(err) = published.await {
                self.link.set(Err(err));
            }
        }
    }

    /// Reads every key's shared state and applies what is newer here.
    async fn reconcile(&self) {
        let read = async {
            let mut redis = self.connection().await?;
            redis.hgetall::<_, HashMap<String, String>>(&self.hash).await.map_err(describe)
        };
        match read.await {
            Ok(all) => {
                self.link.set(Ok(()));
                for json in all.values() {
                    if let Some(state) = SharedState::from_json(json) {
                        self.apply(state);
                    }
                }
            }
            Err(err) => self.link.set(Err(err)),
        }
    }

    async fn reconcile_every(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.heartbeat(every).await;
            self.reconcile().await;
        }
    }

    /// Says this replica is live and counts those that are (a replica not
    /// heard for three intervals is gone).
    async fn heartbeat(&self, every: Duration) {
        let now = wire::now_ms();
        let gone = now.saturating_sub(every.as_millis() as u64 * 3 + 1000);
        let beat = async {
            let mut redis = self.connection().await?;
            let (count,): (u32,) = redis::pipe()
                .zadd(&self.replicas, &self.replica, now)
                .ignore()
                .zrembyscore(&self.replicas, "-inf", gone)
                .ignore()
                .zcard(&self.replicas)
                .query_async(&mut redis)
                .await
                .map_err(describe)?;
            Ok::<_, String>(count)
        };
        if let Ok(count) = beat.await
            && self.link.replicas.swap(count, Ordering::Relaxed) != count
        {
            tracing::info!("cluster: {count} replica(s) live");
            self.pool.share_pacing(count.max(1));
        }
    }
}

/// A Redis error in words, without the URL (it may hold a password).
fn describe(err: redis::RedisError) -> String {
    if err.is_timeout() {
        "Redis did not answer in time".into()
    } else if err.is_connection_refusal() {
        "Redis refused the connection".into()
    } else if err.is_io_error() || err.is_connection_dropped() {
        "the connection to Redis broke".into()
    } else {
        format!("Redis answered with an error ({:?})", err.kind())
    }
}
