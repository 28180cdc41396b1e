//! Admin sign-in: the admin key as a bearer token (scripts, the docs UI), or a
//! session cookie issued by the login endpoint (the dashboard). Cookie
//! requests that change something must also carry the session's CSRF token in
//! `x-csrf-token`; a page on another site can neither read that token nor set
//! the header. Wrong keys, by bearer or login, count against the client's
//! address in the one failed-auth limiter ([`crate::api::auth_limit`]).
//!
//! Sessions live in the store (the SHA-256 of the cookie only), so every
//! replica over a shared store serves a signed-in operator, a sign-out on one
//! ends the session on all, and a restart keeps them. Each is tagged with
//! the admin key it was opened with: a changed key ends every session, even
//! one opened before a restart.

use crate::api::auth::AuthError;
use crate::keys::Fingerprint;
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "gemgate_admin";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The admin key (hashed) and where sessions are kept.
pub struct AdminGate {
    key_hash: std::sync::RwLock<[u8; 32]>,
    store: Store,
}

/// A session just made: the cookie value and its CSRF token.
pub struct NewSession {
    /// The cookie value (a random token; only its hash is kept).
    pub token: String,
    /// The token to send in `x-csrf-token`.
    pub csrf: String,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl AdminGate {
    /// A gate for `admin_key`, keeping sessions in `store`.
    pub fn new(admin_key: &str, store: Store) -> Self {
        Self { key_hash: std::sync::RwLock::new(hash(admin_key)), store }
    }

    /// Rotates the admin key: the new one works at once, the old one stops,
    /// and every session (opened with the old key) ends.
    pub fn set_key(&self, admin_key: &str) {
        let new = hash(admin_key);
        let mut current = self.key_hash.write().unwrap_or_else(|e| e.into_inner());
        if *current != new {
            *current = new;
            tracing::info!("the admin key changed: it works at once, the old one no longer does, sessions ended");
        }
    }

    /// The tag of the admin key in force, derived from its hash (the store
    /// never holds the key's own hash).
    fn key_tag(&self) -> String {
        let key_hash = *self.key_hash.read().unwrap_or_else(|e| e.into_inner());
        hex::encode(Sha256::digest([b"gemgate-admin-session:".as_slice(), &key_hash].concat()))
    }

    /// Whether `presented` is the admin key (constant time).
    pub fn is_admin_key(&self, presented: &str) -> bool {
        let key_hash = *self.key_hash.read().unwrap_or_else(|e| e.into_inner());
        bool::from(hash(presented).ct_eq(&key_hash))
    }

    /// Checks the admin key, for the failed-auth limiter.
    pub fn check_key(&self, presented: &str) -> Result<(), AuthError> {
        if self.is_admin_key(presented) { Ok(()) } else { Err(AuthError::Invalid) }
    }

    /// Opens a session for an operator whose key [`AdminGate::check_key`] accepted.
    pub async fn open_session(&self, from: Option<IpAddr>) -> Result<NewSession, StoreError> {
        let session = NewSession { token: random_token(), csrf: random_token() };
        let expires_ms = crate::store::now_ms() + SESSION_TTL.as_millis() as i64;
        let token_hash = hex::encode(hash(&session.token));
        self.store.put_admin_session(&token_hash, &self.key_tag(), &session.csrf, expires_ms).await?;
        tracing::info!(from = ?from, session = %Fingerprint::of(&session.token), "admin signed in");
        Ok(session)
    }

    /// The CSRF token of a live session opened with the admin key in force.
    pub async fn session_csrf(&self, token: &str) -> Option<String> {
        let token_hash = hex::encode(hash(token));
        match self.store.admin_session(&token_hash, &self.key_tag()).await {
            Ok(found) => found.map(|(csrf, _)| csrf),
            Err(err) => {
                tracing::warn!("reading an admin session failed: {err}");
                None
            }
        }
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) {
        if let Err(err) = self.store.delete_admin_session(&hex::encode(hash(token))).await {
            tracing::warn!("ending an admin session failed: {err}");
        }
    }
}

/// Whether a CSRF header matches (constant time).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| p.len() == expected.len() && bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_are_kept_in_the_store_and_end_on_logout_or_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let gate = AdminGate::new("admin-secret", Store::open(&url).await.unwrap());
        assert!(gate.check_key("admin-secret").is_ok() && gate.check_key("guess").is_err());
        let session = gate.open_session(None).await.unwrap();
        assert_eq!(gate.session_csrf(&session.token).await.as_deref(), Some(session.csrf.as_str()));
        assert!(gate.session_csrf("made-up").await.is_none());
        // Another process over the same store serves it (a replica, or after a restart).
        let other = AdminGate::new("admin-secret", Store::open(&url).await.unwrap());
        assert_eq!(other.session_csrf(&session.token).await.as_deref(), Some(session.csrf.as_str()));
        other.logout(&session.token).await;
        assert!(gate.session_csrf(&session.token).await.is_none(), "a sign-out ends it everywhere");
        let kept = gate.open_session(None).await.unwrap();
        gate.set_key("new-secret");
        assert!(gate.session_csrf(&kept.token).await.is_none(), "a new key ends the sessions");
        let restarted = AdminGate::new("new-secret", Store::open(&url).await.unwrap());
        assert!(restarted.session_csrf(&kept.token).await.is_none(), "even across a restart");
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
    }
}
