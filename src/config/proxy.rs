//! Proxy entries and relay order as configured (`[upstream]`, the proxies
//! file). Pure: parsed here so validation can name a bad entry; used by
//! `upstream::egress`.

use std::sync::Arc;

/// A proxy as configured: its name, its URL (secret: it may carry
/// credentials) and the label shown everywhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// What key files and the admin call it: `NAME=` in the entry, else `host:port`.
    pub name: Arc<str>,
    /// The URL, credentials included. Never printed.
    url: String,
    /// `scheme://host:port`: the URL without credentials, path or query.
    pub label: String,
    /// `host:port`, for probes.
    pub address: String,
}

impl std::fmt::Debug for ProxySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.label)
    }
}

/// The name a key line uses to take no proxy.
pub const DIRECT: &str = "direct";

impl ProxySpec {
    /// Parses `URL` or `NAME=URL` (`http`, `https`, `socks5`, `socks5h`).
    /// Errors never quote the entry: it may hold a password.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (name, url) = match entry.split_once('=') {
            Some((name, url)) if !name.contains(['/', ':', '@']) => (Some(name.trim()), url.trim()),
            _ => (None, entry),
        };
        let parsed = url::Url::parse(url).map_err(|_| "not a proxy URL such as socks5://host:1080".to_string())?;
        if !matches!(parsed.scheme(), "http" | "https" | "socks5" | "socks5h") {
            return Err(format!("proxy scheme `{}` is not http, https, socks5 or socks5h", parsed.scheme()));
        }
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("a proxy URL needs a host")?;
        let port = parsed.port_or_known_default().or(match parsed.scheme() {
            "socks5" | "socks5h" => Some(1080),
            _ => None,
        });
        let port = port.ok_or("a proxy URL needs a port")?;
        let address = format!("{host}:{port}");
        let name = match name {
            Some("") => return Err("a proxy name before `=` is empty".into()),
            Some(name) if name.eq_ignore_ascii_case(DIRECT) => {
                return Err(format!("`{DIRECT}` names no proxy; choose another name"));
            }
            Some(name) => name.to_string(),
            None => address.clone(),
        };
        reqwest::Proxy::all(url).map_err(|_| "not a proxy URL reqwest accepts".to_string())?;
        Ok(Self {
            name: Arc::from(name),
            url: url.to_string(),
            label: format!("{}://{address}", parsed.scheme()),
            address,
        })
    }

    /// The reqwest proxy for this spec.
    pub fn reqwest_proxy(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        reqwest::Proxy::all(&self.url)
    }
}

/// Parses a proxies file: one entry per line, `#` comments and blank lines
/// skipped. Bad lines are reported by number, never quoted.
pub fn parse_proxies_file(text: &str) -> (Vec<ProxySpec>, Vec<String>) {
    let mut specs = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match ProxySpec::parse(line) {
            Ok(spec) => specs.push(spec),
            Err(reason) => problems.push(format!("line {}: {reason}", index + 1)),
        }
    }
    (specs, problems)
}

/// How relays are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayOrder {
    /// The first healthy relay in the configured order.
    #[default]
    Ordered,
    /// Round robin over the healthy relays.
    Rotate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_entries_parse_and_never_show_credentials() {
        let spec = ProxySpec::parse("eu=socks5://user:hunter2@10.0.0.1:1080").expect("parses");
        assert_eq!(&*spec.name, "eu");
        assert_eq!(spec.label, "socks5://10.0.0.1:1080");
        assert!(!format!("{spec:?}").contains("hunter2"));
        let spec = ProxySpec::parse("http://u:p@proxy.local:3128").expect("parses");
        assert_eq!(&*spec.name, "proxy.local:3128");
        let bad = ProxySpec::parse("ftp://u:secretpw@h:1").expect_err("refused");
        assert!(!bad.contains("secretpw"));
        assert!(ProxySpec::parse("direct=http://h:1").is_err());
        let (specs, problems) = parse_proxies_file("# comment\n\nhttp://a:1\nnot a url with pw:secret\n");
        assert_eq!(specs.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("line 4") && !problems[0].contains("secret"));
    }
}
