//! Admin sessions: the SHA-256 of each session cookie, the tag of the admin
//! key it was opened with, its CSRF token and its end. Kept in the store so
//! every replica over it serves a signed-in operator.

use super::rows::now_ms;
use super::{Store, StoreError};
use sqlx::Row;

impl Store {
    /// Stores a new session (and drops those that ended).
    pub async fn put_admin_session(
        &self,
        token_hash: &str,
        key_tag: &str,
        csrf: &str,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let sweep = self.dialect.sql("DELETE FROM admin_sessions WHERE expires_ms <= ?");
        sqlx::query(sweep).bind(now_ms()).execute(&self.pool).await?;
        let insert =
            self.dialect.sql("INSERT INTO admin_sessions (token_hash, key_tag, csrf, expires_ms) VALUES (?, ?, ?, ?)");
        sqlx::query(insert)
            .bind(token_hash.to_string())
            .bind(key_tag.to_string())
            .bind(csrf.to_string())
            .bind(expires_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A live session's CSRF token and end, if it was opened with the key
    /// tagged `key_tag`.
    pub async fn admin_session(&self, token_hash: &str, key_tag: &str) -> Result<Option<(String, i64)>, StoreError> {
        let select = self
            .dialect
            .sql("SELECT csrf, expires_ms FROM admin_sessions WHERE token_hash = ? AND key_tag = ? AND expires_ms > ?");
        let row = sqlx::query(select)
            .bind(token_hash.to_string())
            .bind(key_tag.to_string())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("csrf")?, row.try_get("expires_ms")?)),
            None => None,
        })
    }

    /// Ends a session.
    pub async fn delete_admin_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let delete = self.dialect.sql("DELETE FROM admin_sessions WHERE token_hash = ?");
        sqlx::query(delete).bind(token_hash.to_string()).execute(&self.pool).await?;
        Ok(())
    }
}
