//! How a fake key behaves, read from the key itself: `AIza` + a behaviour
//! token + `-` + padding to Google's 39 characters. A token is a word and an
//! optional number, e.g. `ok`, `rpm30`, `slow1500`, `cut2`.

/// What the fake does for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers normally.
    Ok,
    /// 429 per-minute quota on generation, `RetryInfo` of N seconds (default 37).
    Rpm(u64),
    /// 429 per-minute quota only for models whose name contains `pro`.
    ProRpm(u64),
    /// 429 per-day quota on generation.
    Rpd,
    /// 400 `API_KEY_INVALID` on everything.
    Invalid,
    /// 403 `CONSUMER_SUSPENDED` on everything (the message quotes the key, as Google's does).
    Denied,
    /// 400 `FAILED_PRECONDITION` (user location not supported) on generation.
    Region,
    /// 503 "model is overloaded" on generation.
    Overload,
    /// 500 on generation.
    Internal,
    /// 504 on generation.
    Timeout,
    /// Waits N ms (default 2000) before answering.
    Slow(u64),
    /// Waits N ms (default 200) between streamed chunks.
    Drip(u64),
    /// Cuts the connection after N chunks of the reply (default 1; 0 drops it
    /// before the response head).
    Cut(u64),
    /// A candidate with no parts.
    Empty,
    /// The prompt is blocked: no candidates, `promptFeedback.blockReason`.
    Blocked,
}

impl Behaviour {
    /// Parses a behaviour token (`rpm30`); unknown words behave as `Ok`.
    pub fn parse(token: &str) -> Self {
        let split = token.find(|c: char| c.is_ascii_digit()).unwrap_or(token.len());
        let (word, number) = token.split_at(split);
        let number = number.parse::<u64>().ok();
        match word {
            "rpm" => Self::Rpm(number.unwrap_or(37)),
            "prorpm" => Self::ProRpm(number.unwrap_or(37)),
            "rpd" => Self::Rpd,
            "invalid" => Self::Invalid,
            "denied" => Self::Denied,
            "region" => Self::Region,
            "overload" => Self::Overload,
            "internal" => Self::Internal,
            "timeout" => Self::Timeout,
            "slow" => Self::Slow(number.unwrap_or(2000)),
            "drip" => Self::Drip(number.unwrap_or(200)),
            "cut" => Self::Cut(number.unwrap_or(1)),
            "empty" => Self::Empty,
            "blocked" => Self::Blocked,
            _ => Self::Ok,
        }
    }

    /// The behaviour encoded in a key, or None when the key is not Google-shaped.
    pub fn of_key(key: &str) -> Option<Self> {
        if !crate::keys::is_google_key_shape(key) {
            return None;
        }
        let token = key[4..].split('-').next().unwrap_or_default();
        Some(Self::parse(token))
    }
}

/// A Google-shaped key with `token` as its behaviour and `n` to tell keys apart.
pub fn fake_key(token: &str, n: u32) -> String {
    let head = format!("AIza{token}-");
    let pad = 39usize.saturating_sub(head.len());
    let number = format!("{n:0>pad$}");
    let mut key = format!("{head}{number}");
    key.truncate(39);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_behaviour() {
        let key = fake_key("rpm30", 7);
        assert_eq!(key.len(), 39);
        assert!(crate::keys::is_google_key_shape(&key));
        assert_eq!(Behaviour::of_key(&key), Some(Behaviour::Rpm(30)));
        assert_eq!(Behaviour::of_key(&fake_key("cut0", 1)), Some(Behaviour::Cut(0)));
        assert_eq!(Behaviour::of_key(&fake_key("whatever", 1)), Some(Behaviour::Ok));
        assert_eq!(Behaviour::of_key("not-a-key"), None);
        assert_ne!(fake_key("ok", 1), fake_key("ok", 2));
    }
}
