//! Client keys made in the admin: only their SHA-256 is kept, with a short
//! hint to recognise them, per-client limits and allowed models.

use super::rows::now_ms;
use super::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A stored client key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredClientKey {
    /// Row id.
    pub id: i64,
    /// The operator's name for the client.
    pub name: String,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    /// `gg-…wxyz`, to recognise the key.
    pub key_hint: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds, once revoked.
    pub revoked_ms: Option<i64>,
    /// Requests per minute (0: no limit).
    pub rpm_limit: i64,
    /// Requests per day (0: no limit).
    pub rpd_limit: i64,
    /// Models the client may use (empty: all).
    pub allowed_models: Vec<String>,
    /// Unix milliseconds after which the key no longer works.
    pub expires_ms: Option<i64>,
    /// Unix milliseconds since an operator disabled it (enabling clears it).
    pub disabled_ms: Option<i64>,
    /// Tokens per minute (0: no limit).
    pub tpm_limit: i64,
    /// Tokens per budget period (0: no budget).
    pub budget_tokens: i64,
    /// Micro-dollars per budget period (0: no budget).
    pub budget_micros: i64,
    /// `day`, `week` or `month`.
    pub budget_period: String,
}

/// The limits an operator sets on a client key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests per minute (0: no limit).
    pub rpm_limit: i64,
    /// Requests per day (0: no limit).
    pub rpd_limit: i64,
    /// Models the client may use (empty: all).
    pub allowed_models: Vec<String>,
    /// Unix milliseconds after which the key no longer works.
    pub expires_ms: Option<i64>,
    /// Whether the key works (false: disabled by the operator, reversibly).
    pub enabled: bool,
    /// Tokens per minute (0: no limit).
    pub tpm_limit: i64,
    /// Tokens per budget period (0: no budget).
    pub budget_tokens: i64,
    /// Micro-dollars per budget period (0: no budget).
    pub budget_micros: i64,
    /// The budget's period.
    pub budget_period: crate::config::BudgetPeriod,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            rpm_limit: 0,
            rpd_limit: 0,
            allowed_models: Vec::new(),
            expires_ms: None,
            enabled: true,
            tpm_limit: 0,
            budget_tokens: 0,
            budget_micros: 0,
            budget_period: crate::config::BudgetPeriod::Month,
        }
    }
}

impl StoredClientKey {
    /// The key's budget period (`month` when the stored text is unknown).
    pub fn period(&self) -> crate::config::BudgetPeriod {
        crate::config::BudgetPeriod::parse(&self.budget_period).unwrap_or_default()
    }
}

const COLUMNS: &str = "id, name, key_hash, key_hint, created_ms, revoked_ms, rpm_limit, rpd_limit, allowed_models, expires_ms, disabled_ms, \
     tpm_limit, budget_tokens, budget_micros, budget_period";

impl Store {
    /// Every client key, newest first.
    pub async fn client_keys(&self) -> Result<Vec<StoredClientKey>, StoreError> {
        let sql = self.dialect.sql(&format!("SELECT {COLUMNS} FROM client_keys ORDER BY id DESC"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(client_row).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// One client key by id.
    pub async fn client_key(&self, id: i64) -> Result<Option<StoredClientKey>, StoreError> {
        let sql = self.dialect.sql(&format!("SELECT {COLUMNS} FROM client_keys WHERE id = ?"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(client_row).transpose().map_err(StoreError::from)
    }

    /// Stores a new client key's hash; returns it with its id.
    pub async fn insert_client_key(
        &self,
        name: &str,
        key_hash: &str,
        key_hint: &str,
        limits: &ClientLimits,
    ) -> Result<StoredClientKey, StoreError> {
        let created_ms = now_ms();
        let insert = self.dialect.sql(
            "INSERT INTO client_keys (name, key_hash, key_hint, created_ms, revoked_ms, rpm_limit, rpd_limit, \
             allowed_models, expires_ms, disabled_ms, tpm_limit, budget_tokens, budget_micros, budget_period) \
             VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query(insert)
            .bind(name.to_string())
            .bind(key_hash.to_string())
            .bind(key_hint.to_string())
            .bind(created_ms)
            .bind(limits.rpm_limit)
            .bind(limits.rpd_limit)
            .bind(models_json(&limits.allowed_models))
            .bind(limits.expires_ms)
            .bind((!limits.enabled).then_some(created_ms))
            .bind(limits.tpm_limit)
            .bind(limits.budget_tokens)
            .bind(limits.budget_micros)
            .bind(limits.budget_period.as_str())
            .execute(&self.pool)
            .await?;
        // Read back by the unique hash: portable where RETURNING is not.
        let select = self.dialect.sql(&format!("SELECT {COLUMNS} FROM client_keys WHERE key_hash = ?"));
        let row = sqlx::query(select).bind(key_hash.to_string()).fetch_one(&self.pool).await?;
        Ok(client_row(&row)?)
    }

    /// Sets a client key's limits; false when there is no such key.
    pub async fn update_client_limits(&self, id: i64, limits: &ClientLimits) -> Result<bool, StoreError> {
        // A key disabled before keeps when it was disabled.
        let disabled = if limits.enabled { "NULL" } else { "COALESCE(disabled_ms, ?)" };
        let sql = self.dialect.sql(&format!(
            "UPDATE client_keys SET rpm_limit = ?, rpd_limit = ?, allowed_models = ?, expires_ms = ?, tpm_limit = ?, \
             budget_tokens = ?, budget_micros = ?, budget_period = ?, disabled_ms = {disabled} WHERE id = ?"
        ));
        let mut query = sqlx::query(sql)
            .bind(limits.rpm_limit)
            .bind(limits.rpd_limit)
            .bind(models_json(&limits.allowed_models))
            .bind(limits.expires_ms)
            .bind(limits.tpm_limit)
            .bind(limits.budget_tokens)
            .bind(limits.budget_micros)
            .bind(limits.budget_period.as_str());
        if !limits.enabled {
            query = query.bind(now_ms());
        }
        let done = query.bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes a client key (kept for the record); false when there is no such key.
    pub async fn revoke_client_key(&self, id: i64) -> Result<bool, StoreError> {
        let sql = self.dialect.sql("UPDATE client_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL");
        let done = sqlx::query(sql).bind(now_ms()).bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

fn models_json(models: &[String]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".into())
}

fn client_row(row: &sqlx::any::AnyRow) -> Result<StoredClientKey, sqlx::Error> {
    Ok(StoredClientKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        key_hash: row.try_get(2)?,
        key_hint: row.try_get(3)?,
        created_ms: row.try_get(4)?,
        revoked_ms: row.try_get(5)?,
        rpm_limit: row.try_get(6)?,
        rpd_limit: row.try_get(7)?,
        allowed_models: serde_json::from_str(&row.try_get::<String, _>(8)?).unwrap_or_default(),
        expires_ms: row.try_get(9)?,
        disabled_ms: row.try_get(10)?,
        tpm_limit: row.try_get(11)?,
        budget_tokens: row.try_get(12)?,
        budget_micros: row.try_get(13)?,
        budget_period: row.try_get(14)?,
    })
}
