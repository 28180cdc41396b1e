//! Which peers may tell gemgate who the real client is (`X-Forwarded-For`),
//! and the client address that follows from that. A header from anyone else
//! is ignored: a client could otherwise pick its own address and dodge every
//! per-address limit.

use ipnet::IpNet;
use std::net::IpAddr;

/// Addresses and networks of trusted reverse proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The proxies in these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// nearest untrusted address of `X-Forwarded-For` (read from the right, so a
/// client cannot inject an address of its choosing).
pub fn client_ip(request: &poem::Request, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = request.remote_addr().as_socket_addr()?.ip();
    Some(forwarded_client(peer, request.headers(), trusted))
}

fn forwarded_client(peer: IpAddr, headers: &poem::http::HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted.contains(client) {
        return client;
    }
    // Later header lines were added by later hops: walk them last to first.
    let values: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    for value in values.into_iter().rev() {
        let Ok(text) = value.to_str() else { return client };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted.contains(ip) => client = canonical(ip),
                Ok(ip) => return canonical(ip),
                Err(_) => return client,
            }
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: Option<&str>, trusted: &TrustedProxies) -> IpAddr {
        let mut headers = poem::http::HeaderMap::new();
        if let Some(value) = forwarded {
            headers.insert("x-forwarded-for", value.parse().unwrap());
        }
        forwarded_client(peer.parse().unwrap(), &headers, trusted)
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client("203.0.113.9", Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        assert_eq!(client("127.0.0.1", Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
        // A client's own X-Forwarded-For entry sits left of what the proxies add.
        assert_eq!(client("127.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.1.1.1"), &trusted), ip("1.2.3.4"));
        assert_eq!(client("127.0.0.1", None, &trusted), ip("127.0.0.1"));
        assert_eq!(client("127.0.0.1", Some("junk"), &trusted), ip("127.0.0.1"));
        assert_eq!(client("::ffff:127.0.0.1", Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
    }
}
