//! Persistence on sqlx: SQLite by default, PostgreSQL or MySQL/MariaDB when a
//! database URL says so. Holds key state that must survive a restart and the
//! request log. Writes go through a channel to one writer task that flushes in
//! batches, so the request path never waits on the database.

mod admin_sessions;
mod client_keys;
mod copy;
mod log_query;
mod migrations;
mod minutes;
mod responses;
mod rows;
mod usage;
mod writer;

pub use client_keys::{ClientLimits, StoredClientKey};
pub use copy::CopyError;
pub use log_query::{ErrorRecord, LogFilter, Page, StatRow, new_request_id};
pub use minutes::{LATENCY_BOUNDS_MS, MinuteKey, MinuteRow, MinuteTotals, minute_of};
pub use responses::StoredResponse;
pub use rows::{RequestRecord, now_ms, to_ms};
pub use usage::{UsageBy, UsageKey, UsageRow, UsageTotals, hour_of};
pub use writer::{Retention, SavedKey, StoreHandle};

use crate::key_state::KeySnapshot;
use crate::keys::Fingerprint;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

/// The SQL dialect behind a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    fn of(url: &str) -> Option<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. Every SQL text
    /// passed here is built from constants; values are always bound.
    pub fn sql(self, text: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.placeholders(text))
    }

    fn placeholders(self, text: &str) -> String {
        if self != Self::Postgres {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut n = 0;
        for ch in text.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    }
}

/// Store failures; each says what to check.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL (expected sqlite:, postgres: or mysql:)")]
    UnsupportedUrl,
    /// The data folder could not be created.
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A database URL for logs and errors: its credentials left out.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

/// An open store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Connects and applies pending migrations. For SQLite the file's folder is
    /// created and WAL mode switched on.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url).ok_or(StoreError::UnsupportedUrl)?;
        if dialect == Dialect::Sqlite
            && let Some(parent) =
                sqlite_path(url).and_then(|p| std::path::Path::new(p).parent().map(|p| p.to_path_buf()))
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(&parent)
                .map_err(|source| StoreError::DataDir { path: parent.display().to_string(), source })?;
        }
        let mut options = AnyPoolOptions::new().max_connections(if dialect == Dialect::Sqlite { 2 } else { 5 });
        options = options.acquire_timeout(Duration::from_secs(10));
        if dialect == Dialect::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            if let Some(path) = sqlite_path(url) {
                owner_only(path);
            }
        }
        let store = Self { pool, dialect };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS gemgate_schema (version BIGINT NOT NULL PRIMARY KEY, description VARCHAR(200) NOT NULL, applied_ms BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM gemgate_schema").fetch_all(&self.pool).await?;
        for migration in migrations::MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let mut tx = self.pool.begin().await?;
            for statement in migration.statements(self.dialect) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                self.dialect.sql("INSERT INTO gemgate_schema (version, description, applied_ms) VALUES (?, ?, ?)"),
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(rows::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = migration.version, "store: applied migration {}", migration.description);
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Every persisted key state, by fingerprint.
    pub async fn load_key_states(&self) -> Result<HashMap<Fingerprint, KeySnapshot>, StoreError> {
        rows::load_key_states(&self.pool).await
    }

    /// Starts the batch writer; the handle is cheap to clone.
    pub fn start_writer(&self, flush_every: Duration, batch_size: usize, retention: Retention) -> StoreHandle {
        writer::start(self.clone(), flush_every, batch_size, retention)
    }

    /// The most recent request log rows, newest first (for tests and the admin).
    pub async fn recent_requests(&self, limit: i64) -> Result<Vec<RequestRecord>, StoreError> {
        rows::recent_requests(self, limit).await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The SQLite file and its WAL companions readable by the owner only: they
/// hold key state, client-key hashes and request logs.
fn owner_only(database: &str) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let path = format!("{database}{suffix}");
        if std::path::Path::new(&path).exists()
            && let Err(err) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!("cannot make {path} private (0600): {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(Dialect::Postgres.placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(Dialect::MySql.placeholders("a = ?"), "a = ?");
    }

    #[test]
    fn dialects_and_sqlite_paths() {
        assert_eq!(Dialect::of("postgres://x"), Some(Dialect::Postgres));
        assert_eq!(Dialect::of("mariadb://x"), Some(Dialect::MySql));
        assert_eq!(Dialect::of("redis://x"), None);
        assert_eq!(sqlite_path("sqlite:///tmp/a/b.db?mode=rwc"), Some("/tmp/a/b.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
