//! Clients' limits held across replicas: each admission runs one Lua script
//! in Redis that checks every limit and counts the request only if all hold,
//! so an RPM of N admits exactly N however the requests spread over
//! replicas. Finished requests settle their tokens and budget holds through
//! a queue, off the request path.
//!
//! A busy client is admitted in slices (`slices.rs`): one call counts a
//! slice of its requests, and this replica admits them while the second lasts.
//!
//! An admission waits for Redis at most `limits_timeout_ms`; after a
//! failure the next ones skip Redis for a moment (`fast.rs`). Unasked, a replica admits
//! its share (`tenancy::Count::Checked`): the limit divided by the live
//! replicas (each replica's heartbeat in `<ns>:replicas`).

use super::ClusterLink;
use super::fast::FastLink;
use super::slices::{Slice, Slices, Take};
use crate::tenancy::{SharedAnswer, SharedAsk, SharedLimits, SharedSettle, SharedVerdict, Spent};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Settles waiting for Redis at most (and queued in one [`SETTLE_EVERY`]); past that the oldest are dropped
/// (their holds stay until the period ends, their minute's tokens count as estimated).
const SETTLES: usize = 65_536;
/// Settles sent to Redis in one pipeline at most.
const SETTLE_BATCH: usize = 256;
/// How often settles are written: merged, a second's settles of one client
/// cost one call.
const SETTLE_EVERY: Duration = Duration::from_secs(1);
/// How often slices whose second ended are looked for.
const SWEEP: Duration = Duration::from_millis(250);

/// What the settling queue writes to Redis.
enum Settling {
    /// A finished request.
    Request(SharedSettle),
    /// A slice's unused requests, given back.
    Unused(Arc<str>, Slice),
}

/// The shared counters in Redis.
pub struct RedisLimits {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Arc<FastLink>,
    admit: redis::Script,
    settle: redis::Script,
    link: Arc<ClusterLink>,
    slices: Slices,
    settles: mpsc::Sender<Settling>,
}

impl RedisLimits {
    /// Counters in Redis through `redis`; returns the settling task to keep
    /// (it also gives back slices whose second ended).
    pub fn start(redis: Arc<FastLink>, link: Arc<ClusterLink>) -> (Self, tokio::task::JoinHandle<()>) {
        let (settles, queue) = mpsc::channel(SETTLES);
        let inner = Arc::new(Inner {
            redis,
            admit: redis::Script::new(include_str!("limits.lua")),
            settle: redis::Script::new(include_str!("settle.lua")),
            link,
            slices: Slices::default(),
            settles,
        });
        let task = tokio::spawn(inner.clone().settle_queue(queue));
        let sweeper = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = sweeper.upgrade() else { return };
                let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                for (client, slice) in inner.slices.ended_before(second) {
                    inner.queue(Settling::Unused(client, slice));
                }
            }
        });
        (Self { inner }, task)
    }
}

impl SharedLimits for RedisLimits {
    fn admit(&self, ask: SharedAsk) -> SharedAnswer<'_> {
        let (take, stale) = self.inner.slices.take(&ask);
        if let Some(stale) = stale {
            self.inner.queue(Settling::Unused(ask.client.clone(), stale));
        }
        match take {
            Take::Admitted(reserved) => Box::pin(std::future::ready(Some(SharedVerdict::Admitted { reserved }))),
            Take::Ask(want) => Box::pin(self.inner.admit(ask, want)),
        }
    }

    fn settle(&self, settle: SharedSettle) {
        self.inner.queue(Settling::Request(settle));
    }

    fn replicas(&self) -> u32 {
        self.inner.link.replicas()
    }
}

impl Inner {
    fn key(&self, client: &str, part: &str) -> String {
        format!("{}:limits:{client}:{part}", self.redis.namespace)
    }

    fn queue(&self, settling: Settling) {
        // Full: Redis has been away long; the settle is lost (said above).
        let _ = self.settles.try_send(settling);
    }

    /// Asks Redis to admit `ask` and, with `want` above 1, a slice of that
    /// many requests in all.
    fn admit(
        self: &Arc<Self>,
        ask: SharedAsk,
        want: u32,
    ) -> impl Future<Output = Option<SharedVerdict>> + Send + 'static {
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
                .arg(budget.seed.micros)
                .arg(want)
                .arg(inner.link.replicas());
            let answer = inner
                .redis
                .bounded(|mut connection| async move { call.invoke_async::<(String, u64)>(&mut connection).await })
                .await;
            if want > 1 {
                let admitted = match answer {
                    Some((ref verdict, n)) if verdict == "ok" => n.min(u64::from(want)) as u32,
                    _ => 0,
                };
                if let Some(replaced) = inner.slices.keep(&ask, admitted) {
                    inner.queue(Settling::Unused(ask.client.clone(), replaced));
                }
            }
            answer.and_then(|(verdict, value)| verdict_of(&verdict, value, ask.estimate))
        }
    }

    /// Writes the settles once every [`SETTLE_EVERY`], merged (one call per
    /// client and second rather than one per request); while Redis is away
    /// keeps them (up to [`SETTLES`]) and tries again.
    async fn settle_queue(self: Arc<Self>, mut queue: mpsc::Receiver<Settling>) {
        let mut pending: VecDeque<Settling> = VecDeque::new();
        let mut written = tokio::time::Instant::now();
        loop {
            if pending.is_empty() {
                match queue.recv().await {
                    Some(settle) => pending.push_back(settle),
                    None => return,
                }
            }
            tokio::time::sleep_until(written + SETTLE_EVERY).await;
            written = tokio::time::Instant::now();
            while let Ok(settle) = queue.try_recv() {
                if pending.len() >= SETTLES {
                    pending.pop_front();
                }
                pending.push_back(settle);
            }
            pending = merged(pending);
            while !pending.is_empty() {
                let Some(mut connection) = self.redis.connection() else { break };
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
                    _ => break,
                }
            }
        }
    }

    /// The settle script's invocation for `settling`.
    fn settle_call(&self, settling: &Settling) -> redis::ScriptInvocation<'_> {
        let (settle, unused) = match settling {
            Settling::Request(settle) => (settle.clone(), None),
            Settling::Unused(client, slice) => (unused_settle(client, slice), Some(slice)),
        };
        let mut call = self.settle.prepare_invoke();
        let (tally_second, estimate) = settle.tally.map_or((String::new(), 0), |(s, e)| (s.to_string(), e));
        let (held, ends) = settle.hold.map_or((Default::default(), String::new()), |(h, e)| (h, e.to_string()));
        let day_ends = unused.map_or(0, |slice| slice.of.day_ends_ms);
        call.key(self.key(&settle.client, "minute"))
            .key(self.key(&settle.client, &format!("budget:{ends}")))
            .key(self.key(&settle.client, &format!("day:{day_ends}")))
            .arg(tally_second)
            .arg(estimate)
            .arg(settle.spent.tokens)
            .arg(held.tokens)
            .arg(held.micros)
            .arg(settle.spent.micros)
            .arg(settle.now_ms)
            .arg(ends)
            .arg(unused.map_or(0, |slice| slice.left))
            .arg(unused.map_or(0, |slice| slice.of.second))
            .arg(if unused.is_some_and(|slice| slice.of.rpd > 0) { "1" } else { "" });
        call
    }
}

/// The same settles with every request's settle merged into the first of
/// its client, second and budget period (sums of estimates, holds and
/// spending: the scripts only add them); order otherwise kept.
fn merged(pending: VecDeque<Settling>) -> VecDeque<Settling> {
    type Of = (Arc<str>, Option<u64>, Option<u64>, bool);
    let mut out: VecDeque<Settling> = VecDeque::with_capacity(pending.len());
    let mut first: HashMap<Of, usize> = HashMap::new();
    for settling in pending {
        let Settling::Request(settle) = settling else {
            out.push_back(settling);
            continue;
        };
        let ends = settle.hold.map(|(_, ends)| ends);
        let of = (settle.client.clone(), settle.tally.map(|(s, _)| s), ends, ends.is_some_and(|e| settle.now_ms < e));
        match first.get(&of).and_then(|&at| out.get_mut(at)) {
            Some(Settling::Request(into)) => {
                if let (Some(into), Some(from)) = (into.tally.as_mut(), settle.tally) {
                    into.1 += from.1;
                }
                if let (Some(into), Some(from)) = (into.hold.as_mut(), settle.hold) {
                    into.0.tokens += from.0.tokens;
                    into.0.micros += from.0.micros;
                }
                into.spent.tokens += settle.spent.tokens;
                into.spent.micros += settle.spent.micros;
            }
            _ => {
                first.insert(of, out.len());
                out.push_back(Settling::Request(settle));
            }
        }
    }
    out
}

/// A slice's unused requests as a settle: estimated, nothing spent.
fn unused_settle(client: &Arc<str>, slice: &Slice) -> SharedSettle {
    let left = u64::from(slice.left);
    let held = Spent { tokens: slice.each.tokens.saturating_mul(left), micros: slice.each.micros.saturating_mul(left) };
    SharedSettle {
        client: client.clone(),
        tally: (slice.of.tpm > 0).then_some((slice.of.second, held.tokens)),
        hold: slice.of.budget_ends_ms.map(|ends| (held, ends)),
        spent: Spent::default(),
        now_ms: 0,
    }
}

/// The script's answer as a verdict (`None` for one it never gives).
fn verdict_of(verdict: &str, until_ms: u64, reserved: Spent) -> Option<SharedVerdict> {
    let limit = match verdict {
        "ok" => return Some(SharedVerdict::Admitted { reserved }),
        "rpm" => "rpm",
        "rpd" => "rpd",
        "tpm" => "tpm",
        "budget_tokens" => "budget_tokens",
        "budget_usd" => "budget_usd",
        _ => return None,
    };
    Some(SharedVerdict::Refused { limit, until_ms: (until_ms > 0).then_some(until_ms) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(client: &str, second: u64, estimate: u64, spent: u64, ends: Option<u64>) -> Settling {
        Settling::Request(SharedSettle {
            client: Arc::from(client),
            tally: Some((second, estimate)),
            hold: ends.map(|ends| (Spent { tokens: estimate, micros: estimate * 2 }, ends)),
            spent: Spent { tokens: spent, micros: spent * 2 },
            now_ms: 1_000,
        })
    }

    fn request(settling: &Settling) -> &SharedSettle {
        match settling {
            Settling::Request(settle) => settle,
            Settling::Unused(..) => panic!("a request's settle"),
        }
    }

    #[test]
    fn settles_of_one_client_second_and_period_merge_into_sums() {
        let pending = VecDeque::from([
            settle("ann", 10, 5, 3, Some(9_000)),
            settle("bo", 10, 1, 1, None),
            settle("ann", 10, 7, 2, Some(9_000)),
            settle("ann", 11, 4, 4, Some(9_000)),
            settle("ann", 10, 1, 0, Some(500)),
            settle("ann", 10, 2, 6, Some(9_000)),
        ]);
        let out = merged(pending);
        assert_eq!(out.len(), 4, "ann's second 10 in one period merged; other seconds and periods apart");
        let ann = request(&out[0]);
        assert_eq!(ann.tally, Some((10, 14)));
        assert_eq!(ann.hold, Some((Spent { tokens: 14, micros: 28 }, 9_000)));
        assert_eq!(ann.spent, Spent { tokens: 11, micros: 22 });
        assert_eq!(request(&out[1]).client.as_ref(), "bo");
        assert_eq!(request(&out[2]).tally, Some((11, 4)));
        assert_eq!(request(&out[3]).hold.map(|h| h.1), Some(500), "an ended period is not merged with a live one");
    }
}
