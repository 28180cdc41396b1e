//! Health scans: every key, disabled ones included, answers a cheap real call
//! (`GET /v1beta/models?pageSize=1`) with bounded concurrency; the policy
//! turns the raw verdict into what happens to the key.

use super::slot::KeySlot;
use super::supervisor::PoolMsg;
use crate::policy::SharedPolicy;
use crate::upstream::UpstreamClient;
use futures_util::StreamExt;
use ractor::ActorRef;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Why a scan did not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    /// Another scan is still running.
    #[error("a health scan is already running")]
    AlreadyRunning,
}

/// Progress and result of the current or last scan.
#[derive(Debug, Default)]
pub struct ScanProgress {
    running: AtomicBool,
    total: AtomicU64,
    done: AtomicU64,
    alive: AtomicU64,
    dead: AtomicU64,
    unknown: AtomicU64,
    started_at: Mutex<Option<SystemTime>>,
    finished_at: Mutex<Option<SystemTime>>,
}

/// A copy of [`ScanProgress`] at one moment.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ScanReport {
    /// A scan is running.
    pub running: bool,
    /// Keys to check.
    pub total: u64,
    /// Keys checked.
    pub done: u64,
    /// Keys that answered.
    pub alive: u64,
    /// Keys found dead.
    pub dead: u64,
    /// Keys with no clear answer (rate limited, network trouble).
    pub unknown: u64,
    /// Unix milliseconds of the start, if any scan ran.
    pub started_at_ms: Option<u64>,
    /// Unix milliseconds of the end, if a scan finished.
    pub finished_at_ms: Option<u64>,
}

fn unix_ms(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
}

impl ScanProgress {
    /// The progress now.
    pub fn report(&self) -> ScanReport {
        ScanReport {
            running: self.running.load(Ordering::Acquire),
            total: self.total.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            alive: self.alive.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            unknown: self.unknown.load(Ordering::Relaxed),
            started_at_ms: unix_ms(*self.started_at.lock().unwrap_or_else(|e| e.into_inner())),
            finished_at_ms: unix_ms(*self.finished_at.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

/// Runs scans; owned by the supervisor.
pub struct Scanner {
    upstream: UpstreamClient,
    policy: SharedPolicy,
    concurrency: usize,
    progress: Arc<ScanProgress>,
}

impl Scanner {
    /// A scanner checking `concurrency` keys at once.
    pub fn new(upstream: UpstreamClient, policy: SharedPolicy, concurrency: usize) -> Self {
        Self { upstream, policy, concurrency: concurrency.max(1), progress: Arc::default() }
    }

    /// The shared progress.
    pub fn progress(&self) -> Arc<ScanProgress> {
        self.progress.clone()
    }

    /// Checks `slots` now (not counted as a scan) and applies the verdicts.
    pub async fn verify(
        &self,
        slots: Vec<Arc<KeySlot>>,
        supervisor: &ActorRef<PoolMsg>,
    ) -> Vec<(Arc<KeySlot>, crate::key_state::ScanVerdict)> {
        let verdicts: Vec<_> = futures_util::stream::iter(slots)
            .map(|slot| async move {
                let raw = self.upstream.check_key(&slot.record).await;
                let verdict = self.policy.load().on_scan(raw, slot.record.fingerprint);
                (slot, verdict)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (slot, verdict) in &verdicts {
            let _ = supervisor.cast(PoolMsg::ScanVerdict { slot: slot.clone(), verdict: verdict.clone() });
        }
        verdicts
    }

    /// Starts a scan of `slots` in the background; verdicts go to `supervisor`.
    pub fn start(&self, slots: Vec<Arc<KeySlot>>, supervisor: ActorRef<PoolMsg>) -> Result<(), ScanError> {
        let progress = self.progress.clone();
        if progress.running.swap(true, Ordering::AcqRel) {
            return Err(ScanError::AlreadyRunning);
        }
        progress.total.store(slots.len() as u64, Ordering::Relaxed);
        for counter in [&progress.done, &progress.alive, &progress.dead, &progress.unknown] {
            counter.store(0, Ordering::Relaxed);
        }
        *progress.started_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
        *progress.finished_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(keys = slots.len(), concurrency = self.concurrency, "health scan started");
        let (upstream, policy, concurrency) = (self.upstream.clone(), self.policy.clone(), self.concurrency);
        tokio::spawn(async move {
            futures_util::stream::iter(slots)
                .map(|slot| {
                    let upstream = upstream.clone();
                    async move {
                        let verdict = upstream.check_key(&slot.record).await;
                        (slot, verdict)
                    }
                })
                .buffer_unordered(concurrency)
                .for_each(|(slot, raw)| {
                    let verdict = policy.load().on_scan(raw, slot.record.fingerprint);
                    let counter = match verdict {
                        crate::key_state::ScanVerdict::Alive => &progress.alive,
                        crate::key_state::ScanVerdict::Dead(_) => &progress.dead,
                        crate::key_state::ScanVerdict::Unknown => &progress.unknown,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    let _ = supervisor.cast(PoolMsg::ScanVerdict { slot, verdict });
                    async {}
                })
                .await;
            *progress.finished_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
            progress.running.store(false, Ordering::Release);
            let report = progress.report();
            tracing::info!(alive = report.alive, dead = report.dead, unknown = report.unknown, "health scan finished");
        });
        Ok(())
    }
}
