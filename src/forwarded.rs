//! Who the client is: the one place that decides a request's client address (throttling per
//! address, the audit log). A layer in `src/http.rs` calls [`Forwarding::client_ip`] once per request
//! and hands the answer to every front end as the request extension [`platform::ClientIp`].
//!
//! * The TCP peer is the client, and forwarding headers are ignored, unless the peer is one of
//!   `http.trusted_proxies` (addresses or CIDR ranges; empty by default).
//! * When the peer is a trusted proxy, the client is read from the header named by
//!   `http.forwarded_header` (`x-forwarded-for`, the default, or `forwarded`, RFC 7239's `for=`):
//!   the right-most address that is not itself a trusted proxy. Everything to its left was written
//!   by the client or by proxies we do not know, so it is never believed (a client that sends its
//!   own `X-Forwarded-For: 1.2.3.4` only adds an entry left of the one our proxy appends).
//! * Only the configured header is read: a proxy that sets `X-Forwarded-For` passes a forged
//!   `Forwarded` straight through, so reading both would let a client choose.
//! * An entry that is not an address (`unknown`, an obfuscated `_name`, garbage) stops the walk: the
//!   nearest trusted hop to its right (or the peer) is the client then — sharing a proxy's throttle
//!   is the safe way to be wrong.

use std::net::{IpAddr, Ipv4Addr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Which forwarding header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx `$proxy_add_x_forwarded_for`, most load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// The trusted proxies and the header they write.
#[derive(Debug, Clone)]
pub struct Forwarding {
    proxies: Vec<IpNet>,
    header: ForwardedHeader,
}

impl Forwarding {
    /// Parses `http.trusted_proxies`: each entry an address (`10.0.0.5`, `::1`) or a CIDR range
    /// (`10.0.0.0/8`). The error names the entry that is neither.
    pub fn new(proxies: &[String], header: ForwardedHeader) -> Result<Self, String> {
        let proxies = proxies
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "http.trusted_proxies: {raw:?} is neither an IP address nor a CIDR range (e.g. 10.0.0.0/8)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { proxies, header })
    }

    /// No proxy is trusted: the peer is always the client.
    pub fn none() -> Self {
        Self {
            proxies: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ForwardedHeader::Forwarded => HeaderName::from_static("forwarded"),
        };
        // every line of the header, in order, then every element of each line
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for line in headers.get_all(&name) {
            let Ok(line) = line.to_str() else {
                // not ASCII: not an address, so the walk stops here
                hops.push(None);
                continue;
            };
            for element in line.split(',') {
                let entry = match self.header {
                    ForwardedHeader::XForwardedFor => Some(element),
                    ForwardedHeader::Forwarded => for_param(element),
                };
                if let Some(entry) = entry {
                    hops.push(parse_node(entry));
                }
            }
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusted(*ip) => client = *ip,
                Some(ip) => return *ip,
                None => return client,
            }
        }
        client
    }
}

/// The `for=` parameter of one element of a `Forwarded` header (`for=1.2.3.4;proto=https`).
fn for_param(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`,
/// optionally in double quotes. Anything else (`unknown`, `_hidden`) is None.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let (inside, _port) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (host, port) = raw.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let f = Forwarding::none();
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(f.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let f = Forwarding::new(&["10.0.0.0/8".into()], ForwardedHeader::XForwardedFor).unwrap();
        assert_eq!(f.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let f = Forwarding::new(
            &["10.0.0.0/8".into(), "192.0.2.7".into()],
            ForwardedHeader::XForwardedFor,
        )
        .unwrap();
        // the client forged the first entry; our proxies appended the rest
        let h = headers(
            "x-forwarded-for",
            &["6.6.6.6, 203.0.113.5", "192.0.2.7, 10.1.2.3"],
        );
        assert_eq!(f.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        // only proxies in the chain: the left-most of them
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(f.client_ip(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // no header: the proxy itself
        assert_eq!(
            f.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // garbage stops the walk at the nearest trusted hop
        let h = headers("x-forwarded-for", &["203.0.113.5, unknown, 10.1.1.1"]);
        assert_eq!(f.client_ip(ip("10.0.0.1"), &h), ip("10.1.1.1"));
        // ports and IPv4-mapped peers
        let h = headers("x-forwarded-for", &["203.0.113.5:4711"]);
        assert_eq!(f.client_ip(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let f = Forwarding::new(&["127.0.0.1".into()], ForwardedHeader::Forwarded).unwrap();
        let mut h = headers(
            "forwarded",
            &["for=6.6.6.6, for=\"[2001:db8::7]:443\";proto=https"],
        );
        h.append("x-forwarded-for", "9.9.9.9".parse().unwrap());
        assert_eq!(f.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::7"));
        let x = Forwarding::new(&["127.0.0.1".into()], ForwardedHeader::XForwardedFor).unwrap();
        assert_eq!(x.client_ip(ip("127.0.0.1"), &h), ip("9.9.9.9"));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Forwarding::new(&["10.0.0.0/33".into()], ForwardedHeader::Forwarded).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }
}
