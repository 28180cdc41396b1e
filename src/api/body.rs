//! Reading a client's request body: bounded in size (`server.max_body_bytes`)
//! and, through the server's body deadline, in time. One reader for every
//! dialect; each renders [`BodyError`] in its own shape.

use bytes::Bytes;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit.
    #[error("the request body is larger than {0} bytes (server.max_body_bytes)")]
    TooLarge(usize),
    /// Did not arrive whole before the body deadline.
    #[error("the request body did not arrive in time (server.body_read_timeout_secs)")]
    TimedOut,
    /// The connection broke or the framing was wrong.
    #[error("could not read the request body: {0}")]
    Broken(String),
}

impl BodyError {
    /// The HTTP status for the client: 413, 408 or 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::TimedOut => 408,
            Self::Broken(_) => 400,
        }
    }
}

/// Reads `body` whole, up to `limit` bytes.
pub async fn read_body(body: poem::Body, limit: usize) -> Result<Bytes, BodyError> {
    body.into_bytes_limit(limit).await.map_err(|err| match err {
        poem::error::ReadBodyError::PayloadTooLarge => BodyError::TooLarge(limit),
        poem::error::ReadBodyError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => BodyError::TimedOut,
        other => {
            // poem may wrap the I/O error; its text still names the deadline.
            let text = other.to_string();
            if text.contains("did not arrive in time") { BodyError::TimedOut } else { BodyError::Broken(text) }
        }
    })
}
