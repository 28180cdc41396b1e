//! Session affinity across replicas: `<ns>:affinity:<session>` holds the
//! fingerprint of the key a conversation last used, for the affinity TTL.
//! A replica asks only for a session it has not seen (once per conversation
//! per replica, bounded by `limits_timeout_ms`) and writes only when a
//! session starts or moves to another key, through a queue.

use super::fast::FastLink;
use crate::keys::Fingerprint;
use crate::pool::SharedAffinity;
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Writes waiting at most (a burst of new sessions past this is not shared).
const QUEUE: usize = 16_384;

/// Affinity kept in Redis.
pub struct RedisAffinity {
    redis: Arc<FastLink>,
    writes: mpsc::Sender<(u64, Fingerprint)>,
}

impl RedisAffinity {
    /// Affinity through `redis`, each session kept for `ttl` after its last
    /// move; returns the writing task to keep.
    pub fn start(redis: Arc<FastLink>, ttl: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (writes, queue) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write(redis.clone(), ttl, queue));
        (Self { redis, writes }, task)
    }
}

fn key(namespace: &str, session: u64) -> String {
    format!("{namespace}:affinity:{session:016x}")
}

impl SharedAffinity for RedisAffinity {
    fn recall(&self, session: u64) -> BoxFuture<'static, Option<Fingerprint>> {
        let redis = self.redis.clone();
        Box::pin(async move {
            let key = key(&redis.namespace, session);
            let found = redis
                .bounded(|mut connection| async move { connection.get::<_, Option<String>>(key).await })
                .await
                .flatten()?;
            Fingerprint::parse(&found)
        })
    }

    fn remember(&self, session: u64, key: Fingerprint) {
        let _ = self.writes.try_send((session, key));
    }
}

/// Writes what the queue holds, in pipelines; a write Redis could not take
/// is dropped (affinity is a preference: the cost is a cache miss).
async fn write(redis: Arc<FastLink>, ttl: Duration, mut queue: mpsc::Receiver<(u64, Fingerprint)>) {
    let ttl_ms = ttl.as_millis().max(1) as u64;
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        if let Some(mut connection) = redis.connection() {
            let mut pipe = redis::pipe();
            for (session, fingerprint) in batch.drain(..) {
                pipe.set_options(
                    key(&redis.namespace, session),
                    fingerprint.to_string(),
                    redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
                )
                .ignore();
            }
            let _ = tokio::time::timeout(redis.patient, pipe.query_async::<()>(&mut connection)).await;
        }
        batch.clear();
    }
}
