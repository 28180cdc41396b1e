//! Limits held across replicas: what a client's admission asks of counters
//! kept outside this process (the cluster's Redis) and what it is told, and
//! what a finished request settles there. The counting itself lives with
//! what keeps it (`cluster::limits`); tenancy knows no Redis.

use super::Spent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One admission, as the shared counters see it: check every limit, and
/// count the request only if all hold (one atomic step there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedAsk {
    /// The client's name.
    pub client: Arc<str>,
    /// The second (since the Unix epoch) the request counts in.
    pub second: u64,
    /// Requests per minute (0: none).
    pub rpm: u32,
    /// Requests per day (0: none).
    pub rpd: u32,
    /// Tokens per minute (0: none).
    pub tpm: u64,
    /// The request's estimated spending.
    pub estimate: Spent,
    /// When the client's day ends, Unix milliseconds.
    pub day_ends_ms: u64,
    /// The budget, if the request counts against one.
    pub budget: Option<SharedBudget>,
}

/// A budget as the shared counters hold it (default: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedBudget {
    /// Tokens per period (0: none).
    pub tokens: u64,
    /// Micro-dollars per period (0: none).
    pub micros: u64,
    /// When the period ends, Unix milliseconds.
    pub ends_ms: u64,
    /// What this replica knows was spent in the period (read from the
    /// store): the shared figure starts from it when there is none yet.
    pub seed: Spent,
}

/// The shared counters' answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedVerdict {
    /// Every limit held; the request is counted, holding `reserved` (its
    /// estimate, or that of the request whose slice it was admitted from).
    Admitted {
        /// What the shared counters hold for it until it settles.
        reserved: Spent,
    },
    /// A limit is used up (`rpm`, `rpd`, `tpm`, `budget_tokens`, `budget_usd`);
    /// for the minute's limits, when a request fits again (Unix ms).
    Refused {
        /// Which limit.
        limit: &'static str,
        /// When the minute frees a request's room, for `rpm` and `tpm`.
        until_ms: Option<u64>,
    },
}

/// What a finished request settles in the shared counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedSettle {
    /// The client's name.
    pub client: Arc<str>,
    /// Under a token limit: the second it counted in and its estimate.
    pub tally: Option<(u64, u64)>,
    /// Under a budget: its estimate held and the period's end (Unix ms).
    pub hold: Option<(Spent, u64)>,
    /// What it spent.
    pub spent: Spent,
    /// Now, Unix milliseconds (spending after the period's end is not added).
    pub now_ms: u64,
}

/// The answer of [`SharedLimits::admit`]: `None` when the shared counters
/// could not be asked in time (the caller falls back to its own share).
pub type SharedAnswer<'a> = Pin<Box<dyn Future<Output = Option<SharedVerdict>> + Send + 'a>>;

/// Counters shared by the replicas.
pub trait SharedLimits: Send + Sync {
    /// Checks and counts one request, within a few milliseconds or not at all.
    fn admit(&self, ask: SharedAsk) -> SharedAnswer<'_>;
    /// Settles a finished request (queued; never waits).
    fn settle(&self, settle: SharedSettle);
    /// How many replicas are live, as last seen (at least 1): while the
    /// shared counters cannot be asked, each replica admits this share.
    fn replicas(&self) -> u32;
}
