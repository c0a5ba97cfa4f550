//! Outbound HTTP to addresses users choose (webhook endpoints): the SSRF guard.
//!
//! A target must be `http` or `https`, and every address it resolves to must be public: never
//! loopback, private, link-local, carrier-grade NAT, unique-local, multicast, documentation or
//! otherwise reserved — unless an operator allows that range in [`ALLOW_VAR`] (tests' own
//! receivers on loopback, an endpoint inside a private network). The check runs when the
//! connection is made, in the client's resolver, so a name that resolved to a public address at
//! subscription time and to a private one later is still refused. Redirects are never followed: a
//! 3xx is an answer like any other, so no redirect can lead inside the network.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::platform::catalog::VarSpec;

pub const ALLOW_VAR: VarSpec = VarSpec::optional(
    "HELIX_OUTBOUND_ALLOW",
    "CIDR ranges outbound webhooks may reach although they are private, loopback or link-local (comma-separated, e.g. 10.1.0.0/16,127.0.0.1/32)",
);

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("points inside the network ({0}); an operator may allow it in HELIX_OUTBOUND_ALLOW")]
    Private(IpAddr),
    #[error("its host does not resolve: {0}")]
    Unresolved(String),
}

/// One allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    net: IpAddr,
    prefix: u8,
}

impl Range {
    fn parse(text: &str) -> Result<Range, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has a prefix outside 0..={max}"))?,
            None => max,
        };
        Ok(Range { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let bits = usize::from(prefix);
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// Which addresses outbound requests may reach.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<Range>,
}

impl Guard {
    /// From [`ALLOW_VAR`]'s value; an error names the entry that is not a range.
    pub fn parse(list: &str) -> Result<Guard, String> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Range::parse)
            .collect::<Result<_, _>>()?;
        Ok(Guard { allowed })
    }

    /// From a service's environment (an invalid list was refused at startup: see `validate`).
    pub fn from_env(env: &crate::config::ServiceEnv) -> Guard {
        env.get(ALLOW_VAR.name)
            .and_then(|v| Guard::parse(v).ok())
            .unwrap_or_default()
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|r| r.contains(ip))
    }

    /// Check a target URL as given (scheme, credentials, an address literal); names are checked
    /// when resolved ([`Guard::resolve_check`], and again by the client at each connection).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, TargetError> {
        let url = url::Url::parse(raw).map_err(|_| TargetError::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(TargetError::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        if let Some(ip) = literal(&url) {
            if !self.permits(ip) {
                return Err(TargetError::Private(ip));
            }
        }
        Ok(url)
    }

    /// [`Guard::check_url`], then resolve the host and refuse it if any address is not
    /// permitted (what a subscription is checked with when it is made).
    pub async fn resolve_check(&self, raw: &str) -> Result<url::Url, TargetError> {
        let url = self.check_url(raw)?;
        if literal(&url).is_some() {
            return Ok(url);
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| TargetError::Unresolved(e.to_string()))?;
        for addr in addrs {
            if !self.permits(addr.ip()) {
                return Err(TargetError::Private(addr.ip()));
            }
        }
        Ok(url)
    }

    /// An HTTP client that connects only where this guard permits, follows no redirect, and
    /// gives up after `timeout`.
    pub fn client(self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(Resolver(Arc::new(self))))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("helix-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid")
    }
}

/// The address a URL names literally, if it does.
fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Resolves names with the system resolver and drops the addresses the guard refuses; a name
/// left with none fails to connect.
struct Resolver(Arc<Guard>);

type Resolved = Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>>;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let lookup: Pin<Box<dyn Future<Output = Resolved> + Send>> = Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let refused = addrs
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(
                    format!("{} resolves inside the network ({refused})", name.as_str()).into(),
                );
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        });
        lookup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inside_addresses_are_refused_by_default() {
        let guard = Guard::default();
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!guard.permits(ip(inside)), "{inside} must be refused");
        }
        for outside in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(guard.permits(ip(outside)), "{outside} is public");
        }
    }

    #[test]
    fn allowed_ranges_open_only_themselves() {
        let guard = Guard::parse("127.0.0.1/32, 10.1.0.0/16").unwrap();
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
        assert!(guard.permits(ip("10.1.200.3")));
        assert!(!guard.permits(ip("10.2.0.1")));
        let odd = Guard::parse("10.0.0.0/12").unwrap();
        assert!(odd.permits(ip("10.15.255.255")));
        assert!(!odd.permits(ip("10.16.0.0")));
        assert!(Guard::parse("10.0.0.0/33").is_err());
        assert!(Guard::parse("intranet").is_err());
    }

    #[test]
    fn urls_must_be_http_without_credentials_or_inside_literals() {
        let guard = Guard::default();
        assert_eq!(
            guard.check_url("ftp://example.com/x"),
            Err(TargetError::NotHttp)
        );
        assert_eq!(guard.check_url("example.com/x"), Err(TargetError::NotHttp));
        assert_eq!(
            guard.check_url("https://user:pw@example.com/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            guard.check_url("http://169.254.169.254/latest/meta-data"),
            Err(TargetError::Private(ip("169.254.169.254")))
        );
        assert_eq!(
            guard.check_url("http://[::1]:8080/"),
            Err(TargetError::Private(ip("::1")))
        );
        assert!(guard.check_url("https://hooks.example.com/a?b=c").is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_inside_are_refused() {
        let guard = Guard::default();
        assert!(matches!(
            guard.resolve_check("http://localhost:9/").await,
            Err(TargetError::Private(_))
        ));
        let open = Guard::parse("127.0.0.0/8,::1/128").unwrap();
        assert!(open.resolve_check("http://localhost:9/").await.is_ok());
    }

    #[tokio::test]
    async fn the_client_will_not_connect_inside() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = Guard::default().client(Duration::from_secs(2));
        let refused = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{refused:?}").contains("inside the network"),
            "{refused:?}"
        );
    }
}
