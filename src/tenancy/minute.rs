//! A client's last minute: requests and tokens per second in a fixed ring,
//! so a check costs the same at 1 rpm or 100 million, and a client's counters
//! stay at about 1.5 KB whatever its traffic (a queue of every request of the
//! minute grew to tens of kilobytes a client and cost throughput).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds a request counts for. A request counts in its whole second and
/// the sixty after it, so no rolling minute ever holds more than the limit
/// (at the price of counting up to one second longer).
const SPAN: u64 = 61;

#[derive(Clone, Copy, Debug, Default)]
struct Second {
    /// The second (since the Unix epoch) this slot counts.
    at: u64,
    requests: u32,
    tokens: u64,
}

/// Requests and tokens of the last minute, per second.
#[derive(Debug)]
pub(super) struct Minute {
    seconds: [Second; SPAN as usize],
    /// Totals over the live seconds.
    requests: u64,
    tokens: u64,
    /// Every second up to this one has been expired.
    expired_to: u64,
}

impl Default for Minute {
    fn default() -> Self {
        Self { seconds: [Second::default(); SPAN as usize], requests: 0, tokens: 0, expired_to: 0 }
    }
}

/// The second `time` falls in.
pub(super) fn second_of(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn start_of(second: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(second)
}

impl Minute {
    /// Drops the seconds that no longer count at `now` (amortised: each
    /// second is visited once).
    pub(super) fn expire(&mut self, now: u64) {
        let Some(last_gone) = now.checked_sub(SPAN) else { return };
        if last_gone <= self.expired_to {
            return;
        }
        let first = self.expired_to.max(last_gone.saturating_sub(SPAN)) + 1;
        for second in first..=last_gone {
            // Whatever second the slot last counted, it is gone if it is not
            // after `last_gone` (the range visits every slot after a long silence).
            let slot = &mut self.seconds[(second % SPAN) as usize];
            if slot.at <= last_gone && (slot.requests > 0 || slot.tokens > 0) {
                self.requests -= u64::from(slot.requests);
                self.tokens = self.tokens.saturating_sub(slot.tokens);
                *slot = Second::default();
            }
        }
        self.expired_to = last_gone;
    }

    /// Requests counting now (after [`Minute::expire`]).
    pub(super) fn requests(&self) -> u64 {
        self.requests
    }

    /// Tokens counting now (after [`Minute::expire`]).
    pub(super) fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Counts a request of `tokens` (estimated) in second `now`.
    pub(super) fn add(&mut self, now: u64, tokens: u64) {
        let slot = &mut self.seconds[(now % SPAN) as usize];
        if slot.at != now {
            // A slot left from an older second that was never expired (time
            // went back): drop it from the totals first.
            self.requests -= u64::from(slot.requests);
            self.tokens = self.tokens.saturating_sub(slot.tokens);
            *slot = Second { at: now, requests: 0, tokens: 0 };
        }
        slot.requests += 1;
        slot.tokens += tokens;
        self.requests += 1;
        self.tokens += tokens;
    }

    /// A request counted in second `at` with `estimate` tokens spent
    /// `spent`: its second counts the difference (if it still counts).
    pub(super) fn settle(&mut self, at: u64, estimate: u64, spent: u64) {
        let slot = &mut self.seconds[(at % SPAN) as usize];
        if slot.at != at {
            return;
        }
        let tokens = (slot.tokens + spent).saturating_sub(estimate);
        self.tokens = (self.tokens + tokens).saturating_sub(slot.tokens);
        slot.tokens = tokens;
    }

    /// When the oldest second with requests (`tokens`: with tokens) stops
    /// counting, seen at `now`.
    pub(super) fn frees_at(&self, now: u64, tokens: bool) -> SystemTime {
        let first = now.saturating_sub(SPAN - 1);
        (first..=now)
            .find(|&second| {
                let slot = &self.seconds[(second % SPAN) as usize];
                slot.at == second && if tokens { slot.tokens > 0 } else { slot.requests > 0 }
            })
            .map_or(start_of(now + 1), |second| start_of(second + SPAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_for_its_second_and_the_sixty_after() {
        let mut minute = Minute::default();
        minute.add(1_000, 5);
        minute.add(1_030, 7);
        minute.expire(1_060);
        assert_eq!((minute.requests(), minute.tokens()), (2, 12));
        assert_eq!(minute.frees_at(1_060, false), start_of(1_061));
        minute.expire(1_061);
        assert_eq!((minute.requests(), minute.tokens()), (1, 7));
        assert_eq!(minute.frees_at(1_061, true), start_of(1_091));
        // A long silence clears everything, visiting at most one ring.
        minute.expire(1_000_000);
        assert_eq!((minute.requests(), minute.tokens()), (0, 0));
    }

    #[test]
    fn settling_moves_the_tokens_of_a_second_still_counting() {
        let mut minute = Minute::default();
        minute.add(50, 10);
        minute.add(50, 10);
        minute.settle(50, 10, 100);
        assert_eq!(minute.tokens(), 110);
        minute.settle(50, 10, 0);
        assert_eq!(minute.tokens(), 100);
        minute.expire(200);
        minute.settle(50, 10, 500);
        assert_eq!(minute.tokens(), 0, "a second gone counts nothing");
        // The same slot reused by a later second is left alone.
        minute.add(50 + SPAN * 3, 4);
        minute.settle(50, 4, 1_000);
        assert_eq!(minute.tokens(), 4);
    }
}
