//! Egress: how a call leaves gemgate. Proxies (HTTP, HTTPS, SOCKS5), each
//! key pinned to one by rendezvous hashing so Google sees a stable address
//! per key; relays (several upstream base URLs), tried in order or rotated;
//! and the health of each, kept apart from the keys': a proxy or relay that
//! cannot carry a call is rested with backoff and its keys move to the next
//! one, and none of it is held against a key.

pub use crate::config::{DIRECT, ProxySpec, RelayOrder, parse_proxies_file};
use crate::keys::Fingerprint;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The proxies in the order a key tries them: highest rendezvous score
/// first. Adding or removing a proxy moves only the keys whose first choice
/// it is or becomes, about 1/N of them.
pub fn rendezvous_order(fingerprint: &Fingerprint, names: &[Arc<str>]) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> =
        names.iter().enumerate().map(|(i, name)| (score(fingerprint, name), i)).collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, index)| index).collect()
}

fn score(fingerprint: &Fingerprint, name: &str) -> u64 {
    // Fixed seeds: every replica of the same build pins a key to the same proxy.
    let mut hasher = foldhash::quality::FixedState::with_seed(0x9e37_79b9_7f4a_7c15).build_hasher();
    hasher.write(fingerprint.as_bytes());
    hasher.write_u8(0);
    hasher.write(name.as_bytes());
    hasher.finish()
}

/// The first rest of a failing proxy or relay; doubled per failure in a row.
const FIRST_REST: Duration = Duration::from_secs(2);
/// The longest rest.
const LONGEST_REST: Duration = Duration::from_secs(300);

/// The rest after `failures` failures in a row.
pub fn rest_after(failures: u32) -> Duration {
    let doubled = FIRST_REST.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(LONGEST_REST)
}

/// Now, in Unix milliseconds (how route health keeps time).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The health of one proxy or relay: lock-free on the request path.
#[derive(Debug, Default)]
pub struct RouteHealth {
    failures_in_row: AtomicU32,
    resting_until_ms: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    latency_ms_total: AtomicU64,
    last_error: Mutex<Option<(u64, String)>>,
}

/// What the admin shows of a route's health.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HealthView {
    /// `ok` or `resting`.
    pub state: String,
    /// When a rest ends (ms since the epoch), while resting.
    pub resting_until_ms: Option<u64>,
    /// Failures in a row.
    pub failures_in_row: u32,
    /// Calls carried.
    pub calls: u64,
    /// Calls it failed to carry.
    pub failures: u64,
    /// Mean time to the response head of the calls it carried, in ms.
    pub mean_latency_ms: Option<u64>,
    /// The last failure, in gemgate's words (never a credential).
    pub last_error: Option<String>,
    /// When it happened (ms since the epoch).
    pub last_error_ms: Option<u64>,
}

impl RouteHealth {
    /// Whether it is resting now.
    pub fn resting(&self, now_ms: u64) -> bool {
        self.resting_until_ms.load(Ordering::Relaxed) > now_ms
    }

    fn rest_end(&self) -> u64 {
        self.resting_until_ms.load(Ordering::Relaxed)
    }

    /// It carried a call to its answer.
    pub fn carried(&self, latency: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency_ms_total.fetch_add(latency.as_millis() as u64, Ordering::Relaxed);
        if self.failures_in_row.swap(0, Ordering::Relaxed) != 0 {
            self.resting_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// It could not carry a call: rested with backoff.
    pub fn failed(&self, why: &str) {
        let now = now_ms();
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let in_row = self.failures_in_row.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        self.resting_until_ms.store(now + rest_after(in_row).as_millis() as u64, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((now, why.to_string()));
        }
    }

    /// A probe reached it: its rest ends (a real call proves the rest).
    pub fn probe_succeeded(&self) {
        self.resting_until_ms.store(0, Ordering::Relaxed);
    }

    /// What the admin shows.
    pub fn view(&self) -> HealthView {
        let now = now_ms();
        let resting = self.resting(now);
        let calls = self.calls.load(Ordering::Relaxed);
        let failures = self.failures.load(Ordering::Relaxed);
        let carried = calls.saturating_sub(failures);
        let last = self.last_error.lock().ok().and_then(|last| last.clone());
        HealthView {
            state: if resting { "resting" } else { "ok" }.into(),
            resting_until_ms: resting.then(|| self.rest_end()),
            failures_in_row: self.failures_in_row.load(Ordering::Relaxed),
            calls,
            failures,
            mean_latency_ms: (carried > 0).then(|| self.latency_ms_total.load(Ordering::Relaxed) / carried),
            last_error_ms: last.as_ref().map(|(at, _)| *at),
            last_error: last.map(|(_, text)| text),
        }
    }
}

/// Picks among routes by health: the healthy ones in `preferred` order, then
/// the resting ones by the soonest end (so a call is tried even when all
/// rest: a rest that ended early is found out by trying).
pub fn by_health<'a, T>(routes: impl Iterator<Item = (&'a RouteHealth, T)>, limit: usize) -> Vec<T> {
    let now = now_ms();
    let mut healthy = Vec::new();
    let mut resting = Vec::new();
    for (health, route) in routes {
        if health.resting(now) {
            resting.push((health.rest_end(), route));
        } else {
            healthy.push(route);
        }
    }
    resting.sort_by_key(|(end, _)| *end);
    healthy.into_iter().chain(resting.into_iter().map(|(_, route)| route)).take(limit).collect()
}

/// A relay: an upstream base URL and its health.
pub struct Relay {
    /// The base URL, without a trailing slash.
    pub base: Arc<str>,
    /// Its health.
    pub health: Arc<RouteHealth>,
}

/// The relays, and the counter rotation turns.
pub struct Relays {
    /// In configured order.
    pub list: Vec<Relay>,
    /// Ordered or rotated.
    pub order: RelayOrder,
    turn: AtomicUsize,
}

impl Relays {
    /// Relays from base URLs.
    pub fn new(bases: &[String], order: RelayOrder) -> Self {
        let list = bases
            .iter()
            .map(|base| Relay { base: Arc::from(base.trim_end_matches('/')), health: Arc::default() })
            .collect();
        Self { list, order, turn: AtomicUsize::new(0) }
    }

    /// The relays one call tries, best first (at most `limit`).
    pub fn for_call(&self, limit: usize) -> Vec<&Relay> {
        let count = self.list.len();
        let start = match self.order {
            RelayOrder::Ordered => 0,
            RelayOrder::Rotate => self.turn.fetch_add(1, Ordering::Relaxed) % count.max(1),
        };
        let rotated = (0..count).map(|i| &self.list[(start + i) % count]);
        by_health(rotated.map(|relay| (&*relay.health, relay)), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ApiKey;

    fn fingerprints(count: usize) -> Vec<Fingerprint> {
        (0..count).map(|n| ApiKey::new(format!("AIza{n:0>35}")).fingerprint()).collect()
    }

    #[test]
    fn a_third_proxy_moves_about_a_third_of_the_keys() {
        let two: Vec<Arc<str>> = vec![Arc::from("a:1"), Arc::from("b:1")];
        let three: Vec<Arc<str>> = vec![Arc::from("a:1"), Arc::from("b:1"), Arc::from("c:1")];
        let keys = fingerprints(1000);
        let moved = keys
            .iter()
            .filter(|fp| two[rendezvous_order(fp, &two)[0]] != three[rendezvous_order(fp, &three)[0]])
            .count();
        // Only keys that now prefer the newcomer move: about 1/3.
        assert!((250..=400).contains(&moved), "{moved} of 1000 keys moved");
        let to_new = keys.iter().filter(|fp| &*three[rendezvous_order(fp, &three)[0]] == "c:1").count();
        assert_eq!(moved, to_new, "every key that moved went to the new proxy");
    }

    #[test]
    fn keys_spread_over_proxies_and_the_order_is_stable() {
        let names: Vec<Arc<str>> = vec![Arc::from("a:1"), Arc::from("b:1"), Arc::from("c:1")];
        let keys = fingerprints(900);
        let mut counts = [0usize; 3];
        for fp in &keys {
            let order = rendezvous_order(fp, &names);
            assert_eq!(order, rendezvous_order(fp, &names));
            counts[order[0]] += 1;
        }
        assert!(counts.iter().all(|&c| (200..=400).contains(&c)), "{counts:?}");
    }

    #[test]
    fn rests_double_and_stop_growing() {
        assert_eq!(rest_after(1), Duration::from_secs(2));
        assert_eq!(rest_after(2), Duration::from_secs(4));
        assert_eq!(rest_after(40), LONGEST_REST);
        let health = RouteHealth::default();
        health.failed("connect refused");
        assert!(health.resting(now_ms()));
        assert_eq!(health.view().state, "resting");
        health.carried(Duration::from_millis(5));
        assert!(!health.resting(now_ms()));
        assert_eq!(health.view().failures_in_row, 0);
    }

    #[test]
    fn rotation_spreads_and_skips_resting_relays() {
        let relays = Relays::new(&["http://a".into(), "http://b".into()], RelayOrder::Rotate);
        let firsts: Vec<&str> = (0..4).map(|_| &*relays.for_call(2)[0].base).collect();
        assert_eq!(firsts, ["http://a", "http://b", "http://a", "http://b"]);
        relays.list[0].health.failed("refused");
        assert!((0..4).all(|_| &*relays.for_call(2)[0].base == "http://b"));
        // Resting relays still come last, so a call is tried when all rest.
        assert_eq!(relays.for_call(2).len(), 2);
        let ordered = Relays::new(&["http://a".into(), "http://b".into()], RelayOrder::Ordered);
        assert!((0..3).all(|_| &*ordered.for_call(1)[0].base == "http://a"));
    }
}
