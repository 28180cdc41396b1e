//! The policy seam: every failed attempt is described as an [`Outcome`] and a
//! [`Policy`] turns it into a [`Decision`] (what to do next, what happens to
//! the key). The built-in [`DefaultPolicy`] lives here; rhai scripts
//! ([`script::ScriptPolicy`]) plug in behind the same trait.

pub mod case;
mod default;
mod pacific;
pub mod script;

pub use default::DefaultPolicy;
pub use pacific::next_pacific_midnight;

use crate::key_state::{DisableReason, RestSource, ScanVerdict};
use crate::keys::Fingerprint;
use crate::upstream::FailureKind;
use std::sync::Arc;
use std::time::Duration;

/// Everything a policy may look at about one failed attempt.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// HTTP status from Google, 0 when there was no response.
    pub http_status: u16,
    /// Google's canonical status, when there was an error body.
    pub google_status: String,
    /// `ErrorInfo.reason`, when given.
    pub reason: Option<String>,
    /// The quota that ran out, when given.
    pub quota_id: Option<String>,
    /// `RetryInfo.retryDelay`, when given.
    pub retry_delay: Option<Duration>,
    /// The model requested.
    pub model: Arc<str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Time since the client's request arrived.
    pub elapsed: Duration,
    /// Bytes of the reply already sent to the client (a retry is impossible then).
    pub bytes_sent: u64,
    /// Whether the request streams.
    pub streaming: bool,
    /// The key's group (its file name).
    pub key_group: Arc<str>,
    /// The key's fingerprint (never the key).
    pub key_fingerprint: Fingerprint,
    /// Failures of the key in its recent window.
    pub recent_failures: u32,
    /// Failures of the key in a row, this one included.
    pub consecutive_failures: u32,
}

/// What the dispatch loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Lease another key (after a pause) and try again.
    RetryOtherKey {
        /// Pause before the next attempt.
        after: Duration,
    },
    /// Try the same key again after a pause.
    RetrySameKey {
        /// Pause before the next attempt.
        after: Duration,
    },
    /// Give the error to the client.
    Fail,
}

/// Which models a cooldown covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CooldownScope {
    /// Only the model of the request.
    Model(Arc<str>),
    /// Every model.
    AllModels,
}

/// A rest for the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cooldown {
    /// Which models.
    pub scope: CooldownScope,
    /// How long.
    pub duration: Duration,
    /// Where the length came from.
    pub source: RestSource,
}

/// What a policy decided about one failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Next step of the dispatch loop.
    pub next: NextStep,
    /// Rest the key, if any.
    pub cooldown: Option<Cooldown>,
    /// Disable the key, if any.
    pub disable: Option<DisableReason>,
    /// Count the attempt as the key's failure (a client's bad request is not).
    pub charge_key: bool,
}

/// The seam through which every failover decision goes.
pub trait Policy: Send + Sync + 'static {
    /// Decides what a failed attempt means.
    fn decide(&self, outcome: &Outcome) -> Decision;

    /// Decides what a health scan's raw verdict does to a key; the default
    /// takes the verdict as it is.
    fn on_scan(&self, verdict: ScanVerdict, _fingerprint: Fingerprint) -> ScanVerdict {
        verdict
    }

    /// Whether [`Policy::on_empty_reply`] wants to see empty replies (judging
    /// costs holding a reply back until it shows content).
    fn checks_empty_replies(&self) -> bool {
        false
    }

    /// A successful reply with candidates but nothing in them (Gemini does
    /// this at times): true retries it on another key. Blocked prompts and
    /// safety stops are answers and never reach this.
    fn on_empty_reply(&self, _reply: &EmptyReply) -> bool {
        false
    }
}

/// A successful but empty reply, as the empty-reply hook sees it.
#[derive(Clone, Debug)]
pub struct EmptyReply {
    /// The model.
    pub model: Arc<str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Empty replies this request already retried.
    pub empty_retries: u32,
    /// The candidate's `finishReason`, if any.
    pub finish_reason: Option<String>,
    /// The key's group.
    pub key_group: Arc<str>,
    /// The key's fingerprint.
    pub key_fingerprint: Fingerprint,
}

/// The active policy, swapped whole when a script changes.
/// The policy in force, swapped whole when its script or config changes,
/// with one count of script faults over every script it has run.
#[derive(Clone)]
pub struct SharedPolicy {
    current: Arc<arc_swap::ArcSwap<Box<dyn Policy>>>,
    faults: Arc<std::sync::atomic::AtomicU64>,
}

impl SharedPolicy {
    /// The policy `loaded` configures.
    pub fn configured(loaded: &crate::config::LoadedConfig) -> Result<Self, script::ScriptError> {
        let faults = Arc::default();
        let policy = configured_policy(loaded, Arc::clone(&faults))?;
        Ok(Self { current: Arc::new(arc_swap::ArcSwap::from_pointee(policy)), faults })
    }

    /// The policy in force now.
    pub fn load(&self) -> arc_swap::Guard<Arc<Box<dyn Policy>>> {
        self.current.load()
    }

    /// Rebuilds the policy from `loaded`; on error the running one stays.
    pub fn reload(&self, loaded: &crate::config::LoadedConfig) -> Result<(), script::ScriptError> {
        let policy = configured_policy(loaded, Arc::clone(&self.faults))?;
        self.current.store(Arc::new(policy));
        Ok(())
    }

    /// Script calls that failed and fell back to the built-in policy.
    pub fn faults(&self) -> u64 {
        self.faults.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Wraps a policy for sharing.
pub fn shared(policy: impl Policy) -> SharedPolicy {
    SharedPolicy { current: Arc::new(arc_swap::ArcSwap::from_pointee(Box::new(policy))), faults: Arc::default() }
}

/// The policy `loaded` configures: its script (compiled, with the built-in
/// policy as fallback), or the built-in policy when no script is named.
pub fn configured_policy(
    loaded: &crate::config::LoadedConfig,
    faults: Arc<std::sync::atomic::AtomicU64>,
) -> Result<Box<dyn Policy>, script::ScriptError> {
    let fallback = DefaultPolicy::new(&loaded.config.cooldown, &loaded.config.retry);
    Ok(match loaded.policy_file() {
        Some(path) => Box::new(
            script::ScriptPolicy::load(&path, fallback, faults)?
                .with_time_limit(std::time::Duration::from_millis(loaded.config.policy.time_limit_ms)),
        ),
        None => Box::new(fallback),
    })
}
