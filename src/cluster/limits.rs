//! Clients' limits held across replicas: each admission runs one Lua script
//! in Redis that checks every limit and counts the request only if all hold,
//! so an RPM of N admits exactly N however the requests spread over
//! replicas. Finished requests settle their tokens and budget holds through
//! a queue, off the request path.
//!
//! An admission waits for Redis at most `limits_timeout_ms`; after a
//! failure the next ones skip Redis for a moment (`fast.rs`). Unasked, a replica admits
//! its share (`tenancy::Count::Checked`): the limit divided by the live
//! replicas (each replica's heartbeat in `<ns>:replicas`).

use super::ClusterLink;
use super::fast::{BACK_OFF, FastLink};
use crate::tenancy::{SharedAnswer, SharedAsk, SharedLimits, SharedSettle, SharedVerdict};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Settles waiting for Redis at most; past that the oldest are dropped
/// (their holds stay until the period ends, their minute's tokens count as estimated).
const SETTLES: usize = 65_536;
/// Settles sent to Redis in one pipeline at most.
const SETTLE_BATCH: usize = 256;

/// The shared counters in Redis.
pub struct RedisLimits {
    inner: Arc<Inner>,
    settles: mpsc::Sender<SharedSettle>,
}

struct Inner {
    redis: Arc<FastLink>,
    admit: redis::Script,
    settle: redis::Script,
    link: Arc<ClusterLink>,
}

impl RedisLimits {
    /// Counters in Redis through `redis`; returns the settling task to keep.
    pub fn start(redis: Arc<FastLink>, link: Arc<ClusterLink>) -> (Self, tokio::task::JoinHandle<()>) {
        let inner = Arc::new(Inner {
            redis,
            admit: redis::Script::new(include_str!("limits.lua")),
            settle: redis::Script::new(include_str!("settle.lua")),
            link,
        });
        let (settles, queue) = mpsc::channel(SETTLES);
        let task = tokio::spawn(inner.clone().settle_queue(queue));
        (Self { inner, settles }, task)
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
        format!("{}:limits:{client}:{part}", self.redis.namespace)
    }

    fn admit(self: &Arc<Self>, ask: SharedAsk) -> impl Future<Output = Option<SharedVerdict>> + Send + 'static {
        let inner = self.clone();
        async move {
            let budget = ask.budget.unwrap_or_default();
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
            let answer = inner
                .redis
                .bounded(|mut connection| async move { call.invoke_async::<(String, u64)>(&mut connection).await })
                .await;
            answer.and_then(|(verdict, until_ms)| verdict_of(&verdict, until_ms))
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
            let Some(mut connection) = self.redis.connection() else {
                tokio::time::sleep(BACK_OFF).await;
                continue;
            };
            // One pipeline per batch: a settle per request would cost a round trip each.
            let count = pending.len().min(SETTLE_BATCH);
            let calls: Vec<_> = pending.iter().take(count).map(|settle| self.settle_call(settle)).collect();
            let mut pipe = redis::pipe();
            pipe.load_script(&self.settle).ignore();
            for call in &calls {
                pipe.invoke_script(call).ignore();
            }
            match tokio::time::timeout(self.redis.patient, pipe.query_async::<()>(&mut connection)).await {
                Ok(Ok(())) => {
                    pending.drain(..count);
                }
                _ => tokio::time::sleep(BACK_OFF).await,
            }
        }
    }

    /// The settle script's invocation for `settle`.
    fn settle_call(&self, settle: &SharedSettle) -> redis::ScriptInvocation<'_> {
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
        call
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
