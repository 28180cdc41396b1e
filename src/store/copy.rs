//! `gemgate store migrate --to URL`: copies every table of one store into
//! another, empty one (an SQLite file into PostgreSQL or MariaDB, as a
//! single process grows into replicas). Rows keep their ids; the target's
//! id sequences are moved past them. Batches of [`BATCH`] rows, one
//! transaction each, so memory stays flat however large the log.

use super::{Dialect, Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Rows per batch.
const BATCH: usize = 500;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}

use Kind::{Int, Text};

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// The key batches are read in order of (the first column is compared
    /// for keyset paging when it is `id`; other tables page by offset).
    key: &'static str,
}

/// Every table a store holds, in the order they are copied.
const TABLES: &[Table] = &[
    Table {
        name: "key_state",
        key: "fingerprint",
        columns: &[
            ("fingerprint", Text),
            ("disabled_reason", Text),
            ("disabled_at_ms", Int),
            ("cooldowns", Text),
            ("requests", Int),
            ("successes", Int),
            ("failures", Int),
            ("consecutive_failures", Int),
            ("last_used_ms", Int),
            ("last_error", Text),
            ("latency_ms_total", Int),
            ("tokens", Int),
            ("updated_ms", Int),
        ],
    },
    Table {
        name: "client_keys",
        key: "id",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("key_hash", Text),
            ("key_hint", Text),
            ("created_ms", Int),
            ("revoked_ms", Int),
            ("rpm_limit", Int),
            ("rpd_limit", Int),
            ("allowed_models", Text),
            ("expires_ms", Int),
            ("disabled_ms", Int),
            ("tpm_limit", Int),
            ("budget_tokens", Int),
            ("budget_micros", Int),
            ("budget_period", Text),
        ],
    },
    Table {
        name: "request_log",
        key: "id",
        columns: &[
            ("id", Int),
            ("at_ms", Int),
            ("client", Text),
            ("route", Text),
            ("model", Text),
            ("key_fp", Text),
            ("attempts", Int),
            ("status", Int),
            ("latency_ms", Int),
            ("prompt_tokens", Int),
            ("completion_tokens", Int),
            ("total_tokens", Int),
            ("error", Text),
            ("request_id", Text),
        ],
    },
    Table {
        name: "error_log",
        key: "id",
        columns: &[
            ("id", Int),
            ("at_ms", Int),
            ("client", Text),
            ("route", Text),
            ("model", Text),
            ("key_fp", Text),
            ("attempt", Int),
            ("http_status", Int),
            ("google_status", Text),
            ("reason", Text),
            ("kind", Text),
            ("message", Text),
            ("request_id", Text),
            ("latency_ms", Int),
        ],
    },
    Table {
        name: "usage_hourly",
        key: "hour_ms, client, model, key_group",
        columns: &[
            ("hour_ms", Int),
            ("client", Text),
            ("model", Text),
            ("key_group", Text),
            ("requests", Int),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("thinking_tokens", Int),
            ("cached_tokens", Int),
            ("cost_micros", Int),
        ],
    },
    Table {
        name: "request_minutes",
        key: "minute_ms, client, model, key_group, status",
        columns: &[
            ("minute_ms", Int),
            ("client", Text),
            ("model", Text),
            ("key_group", Text),
            ("status", Int),
            ("requests", Int),
            ("tokens", Int),
            ("latency_max_ms", Int),
            ("lat_0", Int),
            ("lat_1", Int),
            ("lat_2", Int),
            ("lat_3", Int),
            ("lat_4", Int),
            ("lat_5", Int),
            ("lat_6", Int),
            ("lat_7", Int),
            ("lat_8", Int),
            ("lat_9", Int),
            ("lat_10", Int),
            ("lat_11", Int),
            ("lat_12", Int),
            ("lat_13", Int),
        ],
    },
    Table {
        name: "admin_sessions",
        key: "token_hash",
        columns: &[("token_hash", Text), ("key_tag", Text), ("csrf", Text), ("expires_ms", Int)],
    },
    Table {
        name: "responses",
        // A text id: paged by offset (`id` alone means a numeric, increasing id).
        key: "id, client",
        columns: &[("id", Text), ("client", Text), ("items", Text), ("response", Text), ("expires_ms", Int)],
    },
];

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds rows: copying would mix two stores.
    #[error("the target already has rows in {0}: migrate into an empty database")]
    TargetNotEmpty(&'static str),
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Store {
    /// Copies every table into `target` (migrated, and empty); returns the
    /// rows copied per table.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<(&'static str, u64)>, CopyError> {
        for table in TABLES {
            let count = format!("SELECT COUNT(*) FROM {}", table.name);
            let rows: i64 = sqlx::query(target.dialect.sql(&count)).fetch_one(&target.pool).await?.try_get(0)?;
            if rows > 0 {
                return Err(CopyError::TargetNotEmpty(table.name));
            }
        }
        let mut copied = Vec::new();
        for table in TABLES {
            copied.push((table.name, self.copy_table(table, target).await?));
        }
        Ok(copied)
    }

    async fn copy_table(&self, table: &Table, target: &Store) -> Result<u64, CopyError> {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let list = names.join(", ");
        let by_id = table.key == "id";
        let (mut last_id, mut offset, mut total) = (i64::MIN, 0u64, 0u64);
        loop {
            let read = if by_id {
                format!("SELECT {list} FROM {} WHERE id > ? ORDER BY id LIMIT {BATCH}", table.name)
            } else {
                format!("SELECT {list} FROM {} ORDER BY {} LIMIT {BATCH} OFFSET {offset}", table.name, table.key)
            };
            let mut query = sqlx::query(self.dialect.sql(&read));
            if by_id {
                query = query.bind(last_id);
            }
            let rows = query.fetch_all(&self.pool).await?;
            if rows.is_empty() {
                break;
            }
            let values = rows.iter().map(|row| read_row(row, table)).collect::<Result<Vec<_>, sqlx::Error>>()?;
            if by_id && let Some(Value::Int(Some(id))) = values.last().and_then(|row| row.first()) {
                last_id = *id;
            }
            let one = format!("({})", vec!["?"; names.len()].join(", "));
            let insert =
                format!("INSERT INTO {} ({list}) VALUES {}", table.name, vec![one.as_str(); values.len()].join(", "));
            let sql = target.dialect.sql(&insert);
            let mut query = sqlx::query(sql);
            for row in values {
                for value in row {
                    query = match value {
                        Value::Int(v) => query.bind(v),
                        Value::Text(v) => query.bind(v),
                    };
                }
            }
            let mut transaction = target.pool.begin().await?;
            query.execute(&mut *transaction).await?;
            transaction.commit().await?;
            total += rows.len() as u64;
            offset += rows.len() as u64;
        }
        if by_id && target.dialect == Dialect::Postgres && total > 0 {
            // Explicit ids leave PostgreSQL's sequence behind: move it past them.
            let sync =
                format!("SELECT setval(pg_get_serial_sequence('{0}', 'id'), (SELECT MAX(id) FROM {0}))", table.name);
            sqlx::query(target.dialect.sql(&sync)).execute(&target.pool).await?;
        }
        Ok(total)
    }
}

fn read_row(row: &AnyRow, table: &Table) -> Result<Vec<Value>, sqlx::Error> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| match kind {
            // INT columns come back as i32 on some drivers, i64 on others.
            Int => row
                .try_get::<Option<i64>, _>(i)
                .or_else(|_| row.try_get::<Option<i32>, _>(i).map(|v| v.map(i64::from)))
                .map(Value::Int),
            Text => row.try_get::<Option<String>, _>(i).map(Value::Text),
        })
        .collect()
}
