//! Admin sign-in: the admin key as a bearer token (scripts, the docs UI), or a
//! session cookie issued by the login endpoint (the dashboard). Cookie
//! requests that change something must also carry the session's CSRF token in
//! `x-csrf-token`; a page on another site can neither read that token nor set
//! the header. Wrong keys, by bearer or login, count against the client's
//! address in the one failed-auth limiter ([`crate::api::auth_limit`]).

use crate::api::auth::AuthError;
use crate::keys::Fingerprint;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "gemgate_admin";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 1000;

struct Session {
    csrf: String,
    expires: Instant,
}

/// The admin key (hashed) and live sessions.
pub struct AdminGate {
    key_hash: std::sync::RwLock<[u8; 32]>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
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
    /// A gate for `admin_key`.
    pub fn new(admin_key: &str) -> Self {
        Self { key_hash: std::sync::RwLock::new(hash(admin_key)), sessions: Mutex::default() }
    }

    /// Rotates the admin key: the new one works at once, the old one stops,
    /// and every session (opened with the old key) ends.
    pub fn set_key(&self, admin_key: &str) {
        let new = hash(admin_key);
        let mut current = self.key_hash.write().unwrap_or_else(|e| e.into_inner());
        if *current != new {
            *current = new;
            drop(current);
            lock(&self.sessions).clear();
            tracing::info!("the admin key changed: it works at once, the old one no longer does, sessions ended");
        }
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

    /// Checks a login and opens a session.
    pub fn login(&self, presented: &str, from: Option<IpAddr>) -> Result<NewSession, AuthError> {
        let now = Instant::now();
        if !self.is_admin_key(presented) {
            tracing::warn!(from = ?from, "admin login refused: wrong key");
            return Err(AuthError::Invalid);
        }
        let session = NewSession { token: random_token(), csrf: random_token() };
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(hash(&session.token), Session { csrf: session.csrf.clone(), expires: now + SESSION_TTL });
        tracing::info!(from = ?from, session = %Fingerprint::of(&session.token), "admin signed in");
        Ok(session)
    }

    /// The CSRF token of a live session.
    pub fn session_csrf(&self, token: &str) -> Option<String> {
        let sessions = lock(&self.sessions);
        sessions.get(&hash(token)).filter(|s| s.expires > Instant::now()).map(|s| s.csrf.clone())
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) {
        lock(&self.sessions).remove(&hash(token));
    }
}

/// Whether a CSRF header matches (constant time).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| p.len() == expected.len() && bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_with_the_key_and_close_on_logout() {
        let gate = AdminGate::new("admin-secret");
        let session = gate.login("admin-secret", None).unwrap();
        assert_eq!(gate.session_csrf(&session.token).as_deref(), Some(session.csrf.as_str()));
        assert!(gate.session_csrf("made-up").is_none());
        gate.logout(&session.token);
        assert!(gate.session_csrf(&session.token).is_none());
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
    }
}
