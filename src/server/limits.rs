//! Caps on open connections, in total and per client address, so that one
//! client (or a flood of half-open sockets) cannot take every descriptor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts open connections; [`ConnectionLimiter::admit`] hands out a permit
/// that gives its place back when dropped.
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    /// The counted address (`None` for exempt peers).
    ip: Option<IpAddr>,
}

impl ConnectionLimiter {
    /// A limiter for `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self { max_total, max_per_ip, total: AtomicUsize::new(0), per_ip: Mutex::default() }
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    /// `exempt` peers (trusted proxies, which carry many clients) count only
    /// towards the total.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Option<ConnectionPermit> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if exempt {
            return Some(ConnectionPermit { limiter: self.clone(), ip: None });
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_ip.entry(ip).or_insert(0);
        if *open >= self.max_per_ip {
            drop(per_ip);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        *open += 1;
        Some(ConnectionPermit { limiter: self.clone(), ip: Some(ip) })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut per_ip = self.limiter.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(open) = per_ip.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_total_and_places_come_back() {
        let limiter = Arc::new(ConnectionLimiter::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.admit(a, false).unwrap();
        let _second = limiter.admit(a, false).unwrap();
        assert!(limiter.admit(a, false).is_none(), "third from one address");
        let _third = limiter.admit(b, false).unwrap();
        assert!(limiter.admit(b, false).is_none(), "total cap");
        assert!(limiter.admit(b, true).is_none(), "exempt peers still count in the total");
        drop(first);
        let _again = limiter.admit(a, false).expect("a freed place is taken again");
        assert_eq!(limiter.open(), 3);
    }

    #[test]
    fn exempt_peers_are_not_capped_per_address() {
        let limiter = Arc::new(ConnectionLimiter::new(10, 1));
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let permits: Vec<_> = (0..5).map(|_| limiter.admit(proxy, true).unwrap()).collect();
        assert_eq!(limiter.open(), 5);
        drop(permits);
        assert_eq!(limiter.open(), 0);
    }
}
