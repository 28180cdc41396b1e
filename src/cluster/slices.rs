//! Slices of busy clients' admissions: a client that sent at least
//! [`SLICE_FROM`] requests through this replica in the last second is
//! admitted in slices the next: one Redis call counts up to as many
//! requests as it sent then, and this replica admits them without asking
//! again while the second lasts. A slice still unused when its second ends
//! is given back. Redis keeps each slice within a small share of what its
//! limits have left (`limits.lua`), so the limits still hold exactly: slices
//! only move a round trip off most requests of a busy client.

use crate::tenancy::{SharedAsk, Spent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Requests in one second that make a client busy.
pub const SLICE_FROM: u32 = 4;
/// The largest slice asked for.
const SLICE_MOST: u32 = 10_000;

/// What a slice was counted as: the same limits in the same second (a
/// request under changed limits, or in another second, asks Redis again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceFor {
    /// The second its requests count in.
    pub second: u64,
    rpm: u32,
    /// Requests per day (0: none), whose counter the slice took from.
    pub rpd: u32,
    /// Tokens per minute (0: none).
    pub tpm: u64,
    /// When the client's day ends, Unix milliseconds.
    pub day_ends_ms: u64,
    budget: Option<(u64, u64)>,
    /// Under a budget: when its period ends, Unix milliseconds.
    pub budget_ends_ms: Option<u64>,
}

impl SliceFor {
    fn of(ask: &SharedAsk) -> Self {
        Self {
            second: ask.second,
            rpm: ask.rpm,
            rpd: ask.rpd,
            tpm: ask.tpm,
            day_ends_ms: ask.day_ends_ms,
            budget: ask.budget.map(|b| (b.tokens, b.micros)),
            budget_ends_ms: ask.budget.map(|b| b.ends_ms),
        }
    }
}

/// Requests Redis admitted ahead for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// What they were counted as.
    pub of: SliceFor,
    /// What each holds (the estimate of the request that took the slice).
    pub each: Spent,
    /// How many are left.
    pub left: u32,
}

/// One client's pace through this replica.
#[derive(Default)]
struct Pace {
    second: u64,
    this_second: u32,
    last_second: u32,
    /// The second in which a call for a slice is out (one at a time).
    asking: Option<u64>,
    slice: Option<Slice>,
}

/// What an admission does.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Admitted from a slice, holding `Spent`.
    Admitted(Spent),
    /// Ask Redis for this many (1: just this request).
    Ask(u32),
}

/// The slices this replica holds, and each limited client's pace.
#[derive(Default)]
pub struct Slices {
    paces: Mutex<HashMap<Arc<str>, Pace>>,
}

impl Slices {
    fn paces(&self) -> MutexGuard<'_, HashMap<Arc<str>, Pace>> {
        self.paces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `ask` in its client's pace and takes a request from its slice,
    /// or says how many to ask Redis for. Also returns a stale slice to give back.
    pub fn take(&self, ask: &SharedAsk) -> (Take, Option<Slice>) {
        let mut paces = self.paces();
        let pace = paces.entry(ask.client.clone()).or_default();
        if ask.second > pace.second {
            pace.last_second = if ask.second == pace.second + 1 { pace.this_second } else { 0 };
            pace.this_second = 0;
            pace.second = ask.second;
        }
        pace.this_second = pace.this_second.saturating_add(1);
        let of = SliceFor::of(ask);
        if let Some(slice) = pace.slice.as_mut().filter(|slice| slice.of == of && slice.left > 0) {
            slice.left -= 1;
            return (Take::Admitted(slice.each), None);
        }
        let stale = pace.slice.take().filter(|slice| slice.left > 0);
        if pace.last_second >= SLICE_FROM && pace.asking != Some(ask.second) {
            pace.asking = Some(ask.second);
            return (Take::Ask(pace.last_second.min(SLICE_MOST)), stale);
        }
        (Take::Ask(1), stale)
    }

    /// Keeps what Redis admitted for a slice asked for by `ask`: `admitted`
    /// requests, one of them `ask`'s own. Returns a slice it replaces, to give back.
    pub fn keep(&self, ask: &SharedAsk, admitted: u32) -> Option<Slice> {
        let mut paces = self.paces();
        let pace = paces.entry(ask.client.clone()).or_default();
        pace.asking = None;
        if admitted <= 1 {
            return None;
        }
        let slice = Slice { of: SliceFor::of(ask), each: ask.estimate, left: admitted - 1 };
        pace.slice.replace(slice).filter(|old| old.left > 0)
    }

    /// Takes the slices of seconds before `second`, to give back what they
    /// have left, and forgets clients quiet since.
    pub fn ended_before(&self, second: u64) -> Vec<(Arc<str>, Slice)> {
        let mut ended = Vec::new();
        self.paces().retain(|client, pace| {
            if pace.slice.as_ref().is_some_and(|slice| slice.of.second < second)
                && let Some(slice) = pace.slice.take().filter(|slice| slice.left > 0)
            {
                ended.push((client.clone(), slice));
            }
            pace.slice.is_some() || pace.second + 2 >= second
        });
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(second: u64, rpm: u32) -> SharedAsk {
        SharedAsk {
            client: Arc::from("carol"),
            second,
            rpm,
            rpd: 0,
            tpm: 0,
            estimate: Spent { tokens: 7, micros: 1 },
            day_ends_ms: 0,
            budget: None,
        }
    }

    #[test]
    fn a_client_busy_last_second_takes_a_slice_and_uses_it_this_second() {
        let slices = Slices::default();
        for _ in 0..SLICE_FROM - 1 {
            assert_eq!(slices.take(&ask(10, 100)), (Take::Ask(1), None));
        }
        assert_eq!(slices.take(&ask(11, 100)), (Take::Ask(1), None), "3 a second is not busy");
        for _ in 0..5 {
            slices.take(&ask(12, 100));
        }
        assert_eq!(slices.take(&ask(13, 100)), (Take::Ask(5), None), "as many as last second");
        assert_eq!(slices.take(&ask(13, 100)), (Take::Ask(1), None), "one slice asked for at a time");
        assert_eq!(slices.keep(&ask(13, 100), 3), None);
        let each = Spent { tokens: 7, micros: 1 };
        assert_eq!(slices.take(&ask(13, 100)).0, Take::Admitted(each));
        assert_eq!(slices.take(&ask(13, 100)).0, Take::Admitted(each));
        assert_eq!(slices.take(&ask(13, 100)).0, Take::Ask(5), "used up: the next slice");
        assert_eq!(slices.keep(&ask(13, 100), 4), None);
        let (take, stale) = slices.take(&ask(13, 50));
        assert_eq!(take, Take::Ask(5), "changed limits ask again");
        assert_eq!(stale.map(|slice| slice.left), Some(3), "and the old slice is given back");
        assert_eq!(slices.keep(&ask(13, 50), 2), None);
        assert_eq!(slices.take(&ask(13, 50)).0, Take::Admitted(each));
        assert!(slices.ended_before(13).is_empty(), "its second lasts");
        slices.keep(&ask(13, 50), 3);
        let ended = slices.ended_before(14);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].1.left, ended[0].1.of.second), (2, 13), "one of three taken");
        assert!(slices.ended_before(14).is_empty(), "given back once");
    }

    #[test]
    fn a_slice_left_from_an_earlier_second_is_given_back_at_the_next_ask() {
        let slices = Slices::default();
        for _ in 0..SLICE_FROM {
            slices.take(&ask(20, 100));
        }
        assert_eq!(slices.take(&ask(21, 100)).0, Take::Ask(SLICE_FROM));
        slices.keep(&ask(21, 100), SLICE_FROM);
        let (take, stale) = slices.take(&ask(22, 100));
        assert_eq!(take, Take::Ask(1), "one request last second is not busy");
        assert_eq!(stale.map(|slice| slice.left), Some(SLICE_FROM - 1));
        assert!(slices.ended_before(30).is_empty());
        assert!(slices.paces().is_empty(), "quiet clients are forgotten");
    }
}
