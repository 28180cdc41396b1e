//! The Redis connection for calls on the request path (client limits,
//! session affinity): made in the background, so a request never waits for
//! a connect; each call bounded by `limits_timeout_ms`; after a failure the
//! next calls skip Redis for [`BACK_OFF`], so a slow or absent Redis costs a
//! request at most one timeout.

use crate::config::ClusterConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long calls skip Redis after one failed.
pub const BACK_OFF: Duration = Duration::from_millis(250);

/// One multiplexed connection, shared by the request path's callers.
pub struct FastLink {
    client: redis::Client,
    connection: arc_swap::ArcSwapOption<ConnectionManager>,
    connecting: AtomicBool,
    /// Milliseconds since `epoch` before which calls do not ask Redis.
    skip_until: AtomicU64,
    epoch: Instant,
    /// For connecting and for work off the request path.
    pub patient: Duration,
    /// For a call on the request path.
    timeout: Duration,
    /// Prefix of every key.
    pub namespace: String,
}

impl FastLink {
    /// A link through `client` with the timeouts of `config`, connecting now.
    pub fn start(client: redis::Client, config: &ClusterConfig) -> Arc<Self> {
        let link = Arc::new(Self {
            client,
            connection: arc_swap::ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            skip_until: AtomicU64::new(0),
            epoch: Instant::now(),
            patient: Duration::from_millis(config.timeout_ms.max(1)),
            timeout: Duration::from_millis(config.limits_timeout_ms.max(1)),
            namespace: config.namespace.clone(),
        });
        let _ = link.connection();
        link
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn failed(&self) {
        self.skip_until.store(self.now_ms() + BACK_OFF.as_millis() as u64, Ordering::Relaxed);
    }

    /// The connection, or `None` while one is being made.
    pub fn connection(self: &Arc<Self>) -> Option<ConnectionManager> {
        if let Some(connection) = self.connection.load_full() {
            return Some((*connection).clone());
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let link = self.clone();
            tokio::spawn(async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(link.patient))
                    .set_response_timeout(Some(link.patient))
                    .set_number_of_retries(1);
                match ConnectionManager::new_with_config(link.client.clone(), config).await {
                    Ok(made) => link.connection.store(Some(Arc::new(made))),
                    Err(_) => link.failed(),
                }
                link.connecting.store(false, Ordering::Release);
            });
        }
        None
    }

    /// Runs one call on the request path: `None` when Redis is being
    /// skipped, not connected, failed or slower than the timeout.
    pub async fn bounded<T, F, Fut>(self: &Arc<Self>, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.skip_until.load(Ordering::Relaxed) {
            return None;
        }
        let connection = self.connection()?;
        match tokio::time::timeout(self.timeout, call(connection)).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                self.failed();
                None
            }
        }
    }
}
