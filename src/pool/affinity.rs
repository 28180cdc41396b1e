//! Session affinity: the key a conversation last used, so its next request
//! goes to the same key while that key is usable and Gemini's implicit
//! context cache (per key) can serve its repeated prefix. Bounded: two
//! generations of at most [`MAX_SESSIONS`] each, rotated when the newer one
//! fills or its time is up, so a session is remembered for one to two TTLs
//! after its last request. Pure: callers pass `now`.

use super::ready_index::SlotIndex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Sessions remembered per generation at most.
pub const MAX_SESSIONS: usize = 100_000;

/// Session → the key it last used.
pub struct Affinity {
    ttl: Option<Duration>,
    newer: HashMap<u64, SlotIndex>,
    older: HashMap<u64, SlotIndex>,
    rotated: Instant,
}

impl Affinity {
    /// Sessions remembered for `ttl` (`None`: affinity off).
    pub fn new(ttl: Option<Duration>, now: Instant) -> Self {
        Self { ttl, newer: HashMap::new(), older: HashMap::new(), rotated: now }
    }

    /// Turns affinity on with a new `ttl`, or off.
    pub fn set_ttl(&mut self, ttl: Option<Duration>) {
        self.ttl = ttl;
        if ttl.is_none() {
            self.newer.clear();
            self.older.clear();
        }
    }

    /// Whether affinity is on.
    pub fn is_on(&self) -> bool {
        self.ttl.is_some()
    }

    /// The key `session` last used, if remembered.
    pub fn preferred(&mut self, session: Option<u64>, now: Instant) -> Option<SlotIndex> {
        let session = session.filter(|_| self.ttl.is_some())?;
        self.rotate(now);
        self.newer.get(&session).or_else(|| self.older.get(&session)).copied()
    }

    /// Remembers that `session` used `slot`.
    pub fn remember(&mut self, session: Option<u64>, slot: SlotIndex, now: Instant) {
        let Some(session) = session.filter(|_| self.ttl.is_some()) else { return };
        self.rotate(now);
        self.newer.insert(session, slot);
    }

    /// Forgets every session on `slot` (its key left the pool).
    pub fn forget_slot(&mut self, slot: SlotIndex) {
        self.newer.retain(|_, s| *s != slot);
        self.older.retain(|_, s| *s != slot);
    }

    fn rotate(&mut self, now: Instant) {
        let Some(ttl) = self.ttl else { return };
        if self.newer.len() >= MAX_SESSIONS || now.duration_since(self.rotated) >= ttl {
            self.older = std::mem::take(&mut self.newer);
            self.rotated = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_its_key_for_one_to_two_ttls() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut affinity = Affinity::new(Some(ttl), t0);
        affinity.remember(Some(7), 3, t0);
        assert_eq!(affinity.preferred(Some(7), t0 + Duration::from_secs(30)), Some(3));
        assert_eq!(affinity.preferred(Some(7), t0 + Duration::from_secs(90)), Some(3), "in the older generation");
        assert_eq!(affinity.preferred(Some(7), t0 + Duration::from_secs(200)), None, "forgotten");
        assert_eq!(affinity.preferred(None, t0), None);
        affinity.remember(Some(8), 1, t0);
        affinity.forget_slot(1);
        assert_eq!(affinity.preferred(Some(8), t0), None);
        affinity.set_ttl(None);
        affinity.remember(Some(9), 1, t0);
        assert_eq!(affinity.preferred(Some(9), t0), None, "off");
    }
}
