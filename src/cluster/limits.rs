//! Clients' limits held across replicas: each admission runs one Lua script
//! in Redis that checks every limit and counts the request only if all hold,
//! so an RPM of N admits exactly N however the requests spread over
//! replicas. Finished requests settle their tokens and budget holds through
//! a queue, off the request path.
//!
//! An admission waits for Redis at most `limits_timeout_ms`; after a
//! failure the next ones skip Redis for a moment. Unasked, a replica admits
//! its share (`tenancy::Count::Checked`): the limit divided by the live
//! replicas (each replica's heartbeat in `<ns>:replicas`).

use super::ClusterLink;
use crate::config::ClusterConfig;
use crate::tenancy::{SharedAnswer, SharedAsk, SharedLimits, SharedSettle, SharedVerdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Settles waiting for Redis at most; past that the oldest are dropped
/// (their holds stay until the period ends, their minute's tokens count as estimated).
const SETTLES: usize = 65_536;
/// How long admissions skip Redis after it failed one.
const BACK_OFF: Duration = Duration::from_millis(250);

/// The shared counters in Redis.
pub struct RedisLimits {
    inner: Arc<Inner>,
    settles: mpsc::Sender<SharedSettle>,
}

struct Inner {
    client: redis::Client,
    connection: arc_swap::ArcSwapOption<ConnectionManager>,
    connecting: AtomicBool,
    /// Milliseconds since `epoch` before which admissions do not ask Redis.
    skip_until: AtomicU64,
    epoch: Instant,
    namespace: String,
    connect_timeout: Duration,
    timeout: Duration,
    admit: redis::Script,
    settle: redis::Script,
    link: Arc<ClusterLink>,
}

impl RedisLimits {
    /// Counters in the Redis of `config`; returns the settling task to keep.
    pub fn start(
        config: &ClusterConfig,
        link: Arc<ClusterLink>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|_| anyhow::anyhow!("cluster.redis_url is not a Redis URL such as redis://127.0.0.1:6379"))?;
        let inner = Arc::new(Inner {
            client,
            connection: arc_swap::ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            skip_until: AtomicU64::new(0),
            epoch: Instant::now(),
            namespace: config.namespace.clone(),
            connect_timeout: Duration::from_millis(config.timeout_ms.max(1)),
            timeout: Duration::from_millis(config.limits_timeout_ms.max(1)),
            admit: redis::Script::new(include_str!("limits.lua")),
            settle: redis::Script::new(include_str!("settle.lua")),
            link,
        });
        // Connect now, so the first admissions find the connection made.
        let _ = inner.connection();
        let (settles, queue) = mpsc::channel(SETTLES);
        let task = tokio::spawn(inner.clone().settle_queue(queue));
        Ok((Self { inner, settles }, task))
    }
}

impl SharedLimits for RedisLimits {
    fn admit(&self, ask: SharedAsk) -> SharedAnswer<'_> {
        Box::pin(self.inner.admit(ask))
    }

    fn settle(&self, settle: SharedSettle) {
        // Full: Redis has been away long; the settle is lost (said above).
        let _ = self.settles.try_send(settle);
    }

    fn replicas(&self) -> u32 {
        self.inner.link.replicas()
    }
}

impl Inner {
    fn key(&self, client: &str, part: &str) -> String {
        format!("{}:limits:{client}:{part}", self.namespace)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn failed(&self) {
        self.skip_until.store(self.now_ms() + BACK_OFF.as_millis() as u64, Ordering::Relaxed);
    }

    /// The connection, or `None` while one is being made (in the background:
    /// an admission never waits for a connect).
    fn connection(self: &Arc<Self>) -> Option<ConnectionManager> {
        if let Some(connection) = self.connection.load_full() {
            return Some((*connection).clone());
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let inner = self.clone();
            tokio::spawn(async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(inner.connect_timeout))
                    .set_response_timeout(Some(inner.connect_timeout))
                    .set_number_of_retries(1);
                match ConnectionManager::new_with_config(inner.client.clone(), config).await {
                    Ok(made) => inner.connection.store(Some(Arc::new(made))),
                    Err(_) => inner.failed(),
                }
                inner.connecting.store(false, Ordering::Release);
            });
        }
        None
    }

    fn admit(self: &Arc<Self>, ask: SharedAsk) -> impl Future<Output = Option<SharedVerdict>> + Send + 'static {
        let inner = self.clone();
        async move {
            if inner.now_ms() < inner.skip_until.load(Ordering::Relaxed) {
                return None;
            }
            let mut connection = inner.connection()?;
            let budget = ask.budget.unwrap_or(crate::tenancy::SharedBudget {
                tokens: 0,
                micros: 0,
                ends_ms: 0,
                seed: Default::default(),
            });
            let mut call = inner.admit.prepare_invoke();
            call.key(inner.key(&ask.client, "minute"))
                .key(inner.key(&ask.client, &format!("day:{}", ask.day_ends_ms)))
                .key(inner.key(&ask.client, &format!("budget:{}", budget.ends_ms)))
                .arg(ask.second)
                .arg(ask.rpm)
                .arg(ask.rpd)
                .arg(ask.tpm)
                .arg(ask.estimate.tokens)
                .arg(ask.estimate.micros)
                .arg(ask.day_ends_ms)
                .arg(budget.tokens)
                .arg(budget.micros)
                .arg(budget.ends_ms)
                .arg(budget.seed.tokens)
                .arg(budget.seed.micros);
            let answer = tokio::time::timeout(inner.timeout, call.invoke_async::<(String, u64)>(&mut connection)).await;
            match answer {
                Ok(Ok((verdict, until_ms))) => verdict_of(&verdict, until_ms),
                _ => {
                    inner.failed();
                    None
                }
            }
        }
    }

    /// Runs the settles in order; while Redis is away keeps them (up to
    /// [`SETTLES`]) and tries again.
    async fn settle_queue(self: Arc<Self>, mut queue: mpsc::Receiver<SharedSettle>) {
        let mut pending: VecDeque<SharedSettle> = VecDeque::new();
        loop {
            if pending.is_empty() {
                match queue.recv().await {
                    Some(settle) => pending.push_back(settle),
                    None => return,
                }
            }
            while let Ok(settle) = queue.try_recv() {
                if pending.len() >= SETTLES {
                    pending.pop_front();
                }
                pending.push_back(settle);
            }
            let Some(mut connection) = self.connection() else {
                tokio::time::sleep(BACK_OFF).await;
                continue;
            };
            while let Some(settle) = pending.front() {
                let mut call = self.settle.prepare_invoke();
                let (tally_second, estimate) = settle.tally.map_or((String::new(), 0), |(s, e)| (s.to_string(), e));
                let (held, ends) = settle.hold.map_or((Default::default(), String::new()), |(h, e)| (h, e.to_string()));
                call.key(self.key(&settle.client, "minute"))
                    .key(self.key(&settle.client, &format!("budget:{ends}")))
                    .arg(tally_second)
                    .arg(estimate)
                    .arg(settle.spent.tokens)
                    .arg(held.tokens)
                    .arg(held.micros)
                    .arg(settle.spent.micros)
                    .arg(settle.now_ms)
                    .arg(ends);
                let done = tokio::time::timeout(self.connect_timeout, call.invoke_async::<i64>(&mut connection)).await;
                if !matches!(done, Ok(Ok(_))) {
                    break;
                }
                pending.pop_front();
            }
            if !pending.is_empty() {
                tokio::time::sleep(BACK_OFF).await;
            }
        }
    }
}

/// The script's answer as a verdict (`None` for one it never gives).
fn verdict_of(verdict: &str, until_ms: u64) -> Option<SharedVerdict> {
    let limit = match verdict {
        "ok" => return Some(SharedVerdict::Admitted),
        "rpm" => "rpm",
        "rpd" => "rpd",
        "tpm" => "tpm",
        "budget_tokens" => "budget_tokens",
        "budget_usd" => "budget_usd",
        _ => return None,
    };
    Some(SharedVerdict::Refused { limit, until_ms: (until_ms > 0).then_some(until_ms) })
}
