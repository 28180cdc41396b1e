//! What a client may name in a URL. Every route serves an explicit set of
//! (method, path shape) pairs; this module refuses the rest before routing:
//! dot segments, empty segments and percent-encoded `.`, `/` or `\` are
//! refused rather than normalised (a URL library further down would
//! normalise them into another path, signed with a pool key), and only the
//! query parameters Google documents for a call are forwarded.

/// Why a raw path is refused, or `None` when its shape is safe to route.
pub fn unsafe_path_reason(raw_path: &str) -> Option<&'static str> {
    if !raw_path.starts_with('/') {
        return Some("the path must start with `/`");
    }
    if raw_path.len() > 2048 {
        return Some("the path is longer than 2048 bytes");
    }
    if raw_path.contains('\\') {
        return Some("backslashes are not allowed in paths");
    }
    let encoded_separator = raw_path.as_bytes().windows(3).any(|w| {
        w[0] == b'%' && matches!((w[1], w[2].to_ascii_lowercase()), (b'2', b'e' | b'f') | (b'5', b'c') | (b'0', b'0'))
    });
    if encoded_separator {
        return Some("percent-encoded `.`, `/`, `\\` or NUL are not allowed in paths");
    }
    let mut segments = raw_path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment == "." || segment == ".." {
            return Some("`.` and `..` segments are not allowed in paths");
        }
        // A trailing slash is harmless; an empty segment inside is not.
        if segment.is_empty() && segments.peek().is_some() {
            return Some("empty segments (`//`) are not allowed in paths");
        }
    }
    None
}

/// Whether `model` can be a Gemini model id: 1–128 of `[A-Za-z0-9._-]`,
/// starting with a letter or digit (so never `.` or `..`).
pub fn is_valid_model_name(model: &str) -> bool {
    (1..=128).contains(&model.len())
        && model.as_bytes()[0].is_ascii_alphanumeric()
        && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The native query parameters gemgate forwards, each with the values it
/// accepts; everything else (the client's `key` included) stays here.
pub fn native_upstream_query(query: &str) -> String {
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let allowed = match name {
            "alt" => matches!(value, "sse" | "json"),
            "pageSize" => (1..=4).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
            "pageToken" => {
                (1..=512).contains(&value.len())
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
            }
            _ => false,
        };
        if allowed && !kept.iter().any(|(n, _): &(&str, &str)| *n == name) {
            kept.push((name, value));
        }
    }
    kept.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_in_paths_are_refused() {
        for path in [
            "/v1beta/openai/%2e%2e/%2e%2e/v1beta/cachedContents/abc",
            "/v1beta/models/..",
            "/v1beta/models/./x",
            "/v1beta//models",
            "/v1beta/models%2Fx",
            "/v1beta/models/a%5Cb",
            "/v1beta/models\\x",
            "/v1beta/models/%2E",
        ] {
            assert!(unsafe_path_reason(path).is_some(), "{path}");
        }
        for path in ["/v1beta/models", "/v1beta/models/", "/v1beta/models/gemini-2.5-flash:generateContent", "/"] {
            assert_eq!(unsafe_path_reason(path), None, "{path}");
        }
    }

    #[test]
    fn model_names_never_are_dot_segments() {
        assert!(is_valid_model_name("gemini-2.5-flash"));
        assert!(!is_valid_model_name(".."));
        assert!(!is_valid_model_name(".hidden"));
        assert!(!is_valid_model_name("a/b"));
        assert!(!is_valid_model_name(""));
    }

    #[test]
    fn only_known_query_parameters_pass() {
        assert_eq!(native_upstream_query("alt=sse&key=secret&%6Bey=x&foo=bar"), "alt=sse");
        assert_eq!(native_upstream_query("pageSize=50&pageToken=abc_-="), "pageSize=50&pageToken=abc_-=");
        assert_eq!(native_upstream_query("alt=sse&alt=json"), "alt=sse");
        assert_eq!(native_upstream_query("alt=evil&pageSize=-1&pageToken=a%26b"), "");
    }
}
