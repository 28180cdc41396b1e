//! Upstream Gemini API keys: the secret type, its fingerprint and mask, and the
//! parser for the key files in `keys/`.

mod file;

pub(crate) use file::is_key_file_name;
pub use file::{KeyFileWarning, KeyRecord, KeySet, load_key_dir, parse_key_file, summarize_warnings};

use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// An upstream API key. `Debug` and `Display` mask it, so it cannot leak through
/// a log line or an error by accident; [`ApiKey::expose`] is the one way to the
/// clear text and is used only when talking to Google.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key string (already trimmed and checked by the caller).
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key in clear, for the upstream request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `AIza…wxyz`: enough to recognise a key, never enough to use it.
    pub fn masked(&self) -> String {
        mask_secret(&self.0)
    }

    /// The short stable id under which the key is stored and logged.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.masked())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks any secret as its first four and last four characters; a short secret
/// shows only its last four (or nothing when shorter than eight).
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return "…".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    if chars.len() >= 16 {
        let head: String = chars[..4].iter().collect();
        format!("{head}…{tail}")
    } else {
        format!("…{tail}")
    }
}

/// The first 12 hex digits of the key's SHA-256: a stable id for the store, the
/// logs and the admin that reveals nothing of the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 6]);

impl Fingerprint {
    /// Fingerprints a secret.
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut short = [0u8; 6];
        short.copy_from_slice(&digest[..6]);
        Self(short)
    }

    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Parses the 12-digit hex form, as stored.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        let short: [u8; 6] = bytes.try_into().ok()?;
        Some(Self(short))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Whether a token looks like a Google API key: `AIza` and 35 more characters
/// of `[0-9A-Za-z_-]`, which is the shape of every AI Studio key.
pub fn is_google_key_shape(token: &str) -> bool {
    token.len() == 39
        && token.starts_with("AIza")
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The looser shape accepted when `keys.allow_nonstandard` is on: 16 to 512
/// characters of the URL-safe set plus `.` (Vertex express keys and the like).
pub fn is_nonstandard_key_shape(token: &str) -> bool {
    (16..=512).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Masks every Google-shaped key inside `text`. Google quotes the key in some
/// error messages (`Consumer 'api_key:AIza…' has been suspended`), and those
/// messages reach logs, the store and clients.
pub fn redact_keys(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("AIza") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("AIza") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let len = candidate.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-').count();
        if len >= 30 {
            out.push_str(&mask_secret(&candidate[..len]));
            rest = &candidate[len..];
        } else {
            out.push_str("AIza");
            rest = &candidate[4..];
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// `body` with every occurrence of `key` masked: pool keys of any shape
/// (not only `AIza…`) must not reach a log, the store or a client when
/// Google quotes them.
pub fn redact_key_in(body: bytes::Bytes, key: &ApiKey) -> bytes::Bytes {
    let secret = key.expose().as_bytes();
    if secret.is_empty() || memchr::memmem::find(&body, secret).is_none() {
        return body;
    }
    let text = String::from_utf8_lossy(&body).replace(key.expose(), &key.masked());
    bytes::Bytes::from(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pooled_key_of_any_shape_is_masked_in_bodies() {
        let key = ApiKey::new("vertex.express-Key_0123456789abcdef");
        let body = bytes::Bytes::from(format!("{{\"message\":\"key {} is bad\"}}", key.expose()));
        let redacted = redact_key_in(body, &key);
        let text = String::from_utf8_lossy(&redacted);
        assert!(!text.contains(key.expose()) && text.contains(&key.masked()), "{text}");
        let untouched = bytes::Bytes::from_static(b"nothing here");
        assert_eq!(redact_key_in(untouched.clone(), &key), untouched);
    }

    #[test]
    fn keys_inside_text_are_masked() {
        let text = "Consumer 'api_key:AIzaSyA1234567890abcdefghijklmnopqrstuvw' has been suspended. AIza alone stays.";
        assert_eq!(redact_keys(text), "Consumer 'api_key:AIza…tuvw' has been suspended. AIza alone stays.");
        assert!(matches!(redact_keys("nothing"), std::borrow::Cow::Borrowed(_)));
    }

    use super::*;

    const KEY: &str = "AIzaSyA1234567890abcdefghijklmnopqrstuv";

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = ApiKey::new("AIzaSyA1234567890abcdefghijklmnopqrstuvw");
        assert_eq!(format!("{key}"), "AIza…tuvw");
        assert_eq!(format!("{key:?}"), "ApiKey(AIza…tuvw)");
        assert!(!format!("{key:?}").contains("1234567890"));
    }

    #[test]
    fn short_secrets_mask_to_their_tail_or_nothing() {
        assert_eq!(mask_secret("abc"), "…");
        assert_eq!(mask_secret("abcdefghij"), "…ghij");
    }

    #[test]
    fn fingerprint_is_stable_and_round_trips() {
        let a = Fingerprint::of(KEY);
        assert_eq!(a, Fingerprint::of(KEY));
        assert_ne!(a, Fingerprint::of("AIzaSyA1234567890abcdefghijklmnopqrstuX"));
        assert_eq!(a.to_string().len(), 12);
        assert_eq!(Fingerprint::parse(&a.to_string()), Some(a));
        assert_eq!(Fingerprint::parse("xyz"), None);
    }

    #[test]
    fn google_key_shape() {
        assert!(is_google_key_shape("AIzaSyA1234567890abcdefghijklmnopqrstuv"));
        assert!(!is_google_key_shape("AIzaSyA1234567890abcdefghijklmnopqrstu"));
        assert!(!is_google_key_shape("BIzaSyA1234567890abcdefghijklmnopqrstuv"));
        assert!(!is_google_key_shape("AIzaSyA1234567890abcdefghijklmnopqrst v"));
        assert!(is_nonstandard_key_shape("AQ.Ab8RN6Jabcdefghijklmnop"));
        assert!(!is_nonstandard_key_shape("short"));
    }
}
