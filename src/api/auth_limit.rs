//! The one failed-authentication limiter for every way in (client keys on
//! every API, the admin key as bearer or login, the metrics token): each
//! client address may fail a bounded number of times a minute; past that it
//! is refused with 429 before any key is checked, until its minute ends.
//! Addresses come from [`crate::server::client_ip`], so behind a trusted
//! reverse proxy each real client has its own budget and a lockout never
//! shuts out everyone behind the proxy. IPv6 clients are counted per /64.

use super::auth::AuthError;
use crate::server::{TrustedProxies, client_ip};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at most; beyond it new addresses go uncounted rather
/// than letting a flood of addresses grow memory.
const MAX_TRACKED: usize = 100_000;

struct Failures {
    count: u32,
    since: Instant,
}

/// Failed authentications per client address.
pub struct AuthLimiter {
    allowed: u32,
    trusted: TrustedProxies,
    /// Whether any failure was ever recorded: until then no request takes the lock.
    any_failure: AtomicBool,
    failures: RwLock<HashMap<IpAddr, Failures>>,
}

impl AuthLimiter {
    /// `allowed` failures per address and minute; `trusted` proxies may name the client.
    pub fn new(allowed: u32, trusted: TrustedProxies) -> Self {
        Self { allowed, trusted, any_failure: AtomicBool::new(false), failures: RwLock::default() }
    }

    /// The address a request is counted under.
    pub fn address(&self, request: &poem::Request) -> Option<IpAddr> {
        client_ip(request, &self.trusted).map(bucket)
    }

    /// Runs `check` unless `request`'s address is locked out, counting a
    /// refused key against it. A missing key is not a guess and is not counted.
    pub fn guard<T>(
        &self,
        request: &poem::Request,
        check: impl FnOnce() -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let address = self.address(request);
        if let Some(wait) = address.and_then(|ip| self.locked_for(ip, Instant::now())) {
            return Err(AuthError::TooMany(wait));
        }
        let result = check();
        if let (Err(AuthError::Invalid), Some(ip)) = (&result, address) {
            self.record_failure(ip, Instant::now());
        }
        result
    }

    /// How long `ip` stays locked out, if it is.
    fn locked_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.any_failure.load(Ordering::Relaxed) {
            return None;
        }
        let failures = self.failures.read().unwrap_or_else(|e| e.into_inner());
        let entry = failures.get(&ip)?;
        let elapsed = now.duration_since(entry.since);
        (entry.count >= self.allowed && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        self.any_failure.store(true, Ordering::Relaxed);
        let mut failures = self.failures.write().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = failures.entry(ip).or_insert(Failures { count: 0, since: now });
        if now.duration_since(entry.since) >= WINDOW {
            *entry = Failures { count: 0, since: now };
        }
        entry.count += 1;
        if entry.count == self.allowed {
            tracing::warn!(client = %ip, "too many failed authentications: refusing this address for a minute");
        }
    }
}

/// The unit an address is counted in: itself for IPv4, its /64 for IPv6
/// (one host usually owns a whole /64).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], segments[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_after_its_failures_and_freed_after_the_window() {
        let limiter = AuthLimiter::new(3, TrustedProxies::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.locked_for(ip, start).is_none());
            limiter.record_failure(ip, start);
        }
        assert!(limiter.locked_for(ip, start).is_some());
        assert!(limiter.locked_for(other, start).is_none());
        assert!(limiter.locked_for(ip, start + WINDOW).is_none());
        limiter.record_failure(ip, start + WINDOW);
        assert!(limiter.locked_for(ip, start + WINDOW).is_none(), "a new window starts counting from zero");
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a = bucket("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = bucket("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, bucket("2001:db8:1:3::1".parse().unwrap()));
    }
}
