//! Responses kept for `previous_response_id`: a response's conversation
//! (its stored history, input and output items) and the response object,
//! readable only by the client that made it, until it expires.

use super::rows::now_ms;
use super::{Store, StoreError};
use sqlx::Row;

/// One kept response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The conversation through this response: a JSON array of items.
    pub items: String,
    /// The response object, JSON.
    pub response: String,
}

impl Store {
    /// Keeps a response (and drops those that expired).
    pub async fn put_response(
        &self,
        id: &str,
        client: &str,
        stored: &StoredResponse,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let sweep = self.dialect.sql("DELETE FROM responses WHERE expires_ms <= ?");
        sqlx::query(sweep).bind(now_ms()).execute(&self.pool).await?;
        let insert =
            self.dialect.sql("INSERT INTO responses (id, client, items, response, expires_ms) VALUES (?, ?, ?, ?, ?)");
        sqlx::query(insert)
            .bind(id.to_string())
            .bind(client.to_string())
            .bind(stored.items.clone())
            .bind(stored.response.clone())
            .bind(expires_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A live response of `client`.
    pub async fn response(&self, id: &str, client: &str) -> Result<Option<StoredResponse>, StoreError> {
        let select =
            self.dialect.sql("SELECT items, response FROM responses WHERE id = ? AND client = ? AND expires_ms > ?");
        let row = sqlx::query(select)
            .bind(id.to_string())
            .bind(client.to_string())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(StoredResponse { items: row.try_get("items")?, response: row.try_get("response")? }),
            None => None,
        })
    }

    /// Forgets a response of `client`; whether there was one.
    pub async fn delete_response(&self, id: &str, client: &str) -> Result<bool, StoreError> {
        let delete = self.dialect.sql("DELETE FROM responses WHERE id = ? AND client = ?");
        let done = sqlx::query(delete).bind(id.to_string()).bind(client.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}
