//! Egress to addresses that tenants choose (webhook endpoints, delivery providers): the SSRF
//! guard.
//!
//! A URL is only a name; what matters is the address a connection is finally made to. So
//! the check runs in the DNS resolver that the HTTP client connects through: every address a
//! name resolves to is checked, only permitted ones are handed to the connector, and the
//! connection goes to exactly those. A name that resolves to a public address when a webhook
//! is saved and to 169.254.169.254 when it is delivered (DNS rebinding) is refused at
//! delivery. IP literals never reach a resolver, so [`Egress::request`] checks them itself.
//! Redirects are not followed and proxies from the environment are ignored: either would
//! move the connection somewhere the guard did not check.
//!
//! Permitted: public unicast addresses over `https`. `HERALD_EGRESS_ALLOW` names CIDRs that
//! may be reached despite the guard, over plain `http` too (local development, tests, a
//! provider inside the VPC).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, Method, RequestBuilder, Url};

/// The environment variable holding the allow list.
pub const ALLOW_ENV: &str = "HERALD_EGRESS_ALLOW";

/// Which addresses outbound requests may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{ALLOW_ENV}: {0:?} is not a CIDR such as 127.0.0.0/8 or an address such as ::1")]
pub struct InvalidAllowList(String);

impl EgressPolicy {
    /// Only public addresses, over https.
    pub fn public_only() -> EgressPolicy {
        EgressPolicy::default()
    }

    /// Comma-separated CIDRs or single addresses; blanks are ignored.
    pub fn parse(list: &str) -> Result<EgressPolicy, InvalidAllowList> {
        let allow = list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidAllowList(item.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy { allow })
    }

    pub fn from_env() -> Result<EgressPolicy, InvalidAllowList> {
        EgressPolicy::parse(&std::env::var(ALLOW_ENV).unwrap_or_default())
    }

    /// Whether the allow list names `ip` (or the IPv4 address an IPv6 form embeds).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let embedded = canonical(ip);
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&embedded))
    }

    /// Whether a connection to `ip` is permitted over `scheme`.
    pub fn permits(&self, scheme: Scheme, ip: IpAddr) -> bool {
        self.allows(ip) || (scheme == Scheme::Https && is_public(ip))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Why a request was not sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("only http and https URLs can be reached")]
    Scheme,
    #[error("{0} is not a public address")]
    Address(IpAddr),
    #[error("plain http is allowed only to addresses named in {ALLOW_ENV}")]
    PlainHttp,
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local (the cloud
/// metadata service), CGNAT, unspecified, multicast, broadcast, documentation, benchmarking
/// or reserved, and not an IPv6 form (mapped, compatible, NAT64, 6to4) of such an address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv6 forms that carry an IPv4 address are judged by that address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still routed by
        // some stacks). `::` and `::1` stay IPv6 so that an allow list can name `::1`.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 6to4: 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const BLOCKED: [(u8, u8, u8, u8, u8); 16] = [
        (0, 0, 0, 0, 8),          // "this network", unspecified
        (10, 0, 0, 0, 8),         // private
        (100, 64, 0, 0, 10),      // CGNAT
        (127, 0, 0, 0, 8),        // loopback
        (169, 254, 0, 0, 16),     // link-local, cloud metadata
        (172, 16, 0, 0, 12),      // private
        (192, 0, 0, 0, 24),       // IETF protocol assignments
        (192, 0, 2, 0, 24),       // documentation
        (192, 88, 99, 0, 24),     // 6to4 relay anycast
        (192, 168, 0, 0, 16),     // private
        (198, 18, 0, 0, 15),      // benchmarking
        (198, 51, 100, 0, 24),    // documentation
        (203, 0, 113, 0, 24),     // documentation
        (224, 0, 0, 0, 4),        // multicast
        (240, 0, 0, 0, 4),        // reserved, broadcast
        (255, 255, 255, 255, 32), // broadcast (inside 240/4, named for clarity)
    ];
    let addr = u32::from(ip);
    !BLOCKED.iter().any(|&(a, b, c, d, len)| {
        let net = u32::from(Ipv4Addr::new(a, b, c, d));
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        addr & mask == net
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let blocked = s[..6] == [0; 6] // ::/96: unspecified, loopback, IPv4-compatible
        || s[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
        || s[0] & 0xffc0 == 0xfe80 // link-local fe80::/10
        || s[0] & 0xffc0 == 0xfec0 // site-local fec0::/10 (deprecated)
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address we cannot see
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1); // local-use NAT64 64:ff9b:1::/48
    !blocked
}

/// A resolver that hands the connector only the addresses the policy permits.
struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    scheme: Scheme,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let scheme = self.scheme;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| policy.permits(scheme, addr.ip()))
                .collect();
            if permitted.is_empty() {
                let refused = resolved.first().map_or_else(
                    || format!("{host} has no address"),
                    |addr| {
                        format!(
                            "{host} resolves to {}: {}",
                            addr.ip(),
                            refusal(scheme, addr.ip())
                        )
                    },
                );
                let error: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(io::Error::new(io::ErrorKind::PermissionDenied, refused));
                return Err(error);
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

fn refusal(scheme: Scheme, ip: IpAddr) -> Refused {
    if scheme == Scheme::Http && is_public(ip) {
        Refused::PlainHttp
    } else {
        Refused::Address(ip)
    }
}

/// Timeouts of outbound requests.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    /// Standard Webhooks: a delivery must succeed within 15 seconds.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// Guarded HTTP clients, one per scheme because the scheme decides what is permitted and a
/// resolver does not see the URL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Egress {
    policy: Arc<EgressPolicy>,
    https: Client,
    http: Client,
}

impl Egress {
    pub fn new(policy: EgressPolicy, timeouts: Timeouts) -> Egress {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let client = |scheme| {
            Client::builder()
                .dns_resolver(GuardedResolver {
                    policy: Arc::clone(&policy),
                    scheme,
                })
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(timeouts.connect)
                .timeout(timeouts.total)
                .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("the HTTP client's configuration is static and valid")
        };
        Egress {
            https: client(Scheme::Https),
            http: client(Scheme::Http),
            policy,
        }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// What can be judged from the URL alone: the scheme, and an IP literal host (which no
    /// resolver sees). Names are judged when they are resolved.
    pub fn check(&self, url: &Url) -> Result<Scheme, Refused> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(Refused::Scheme),
        };
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !self.policy.permits(scheme, ip) {
                return Err(refusal(scheme, ip));
            }
        } else if scheme == Scheme::Http && self.policy.allow.is_empty() {
            return Err(Refused::PlainHttp);
        }
        Ok(scheme)
    }

    /// A request through the guard. Errors from the resolver's refusal surface when it is
    /// sent, as a connect error whose message names the refused address.
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, Refused> {
        let client = match self.check(&url)? {
            Scheme::Https => &self.https,
            Scheme::Http => &self.http,
        };
        Ok(client.request(method, url))
    }
}

/// Reads at most `cap` bytes of a response body; the rest is dropped unread. Returns the
/// bytes and whether the body was longer.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_every_non_public_range() {
        for s in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn permits_public_addresses() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(s)), "{s} must be public");
        }
    }

    #[test]
    fn the_allow_list_opens_named_ranges_over_http_too() {
        let policy = EgressPolicy::parse(" 127.0.0.0/8, ::1 ,").unwrap();
        assert!(policy.permits(Scheme::Http, ip("127.0.0.1")));
        assert!(policy.permits(Scheme::Https, ip("::1")));
        assert!(policy.permits(Scheme::Http, ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(Scheme::Http, ip("10.0.0.1")));
        // Public addresses need https unless they are listed.
        assert!(!policy.permits(Scheme::Http, ip("8.8.8.8")));
        assert!(policy.permits(Scheme::Https, ip("8.8.8.8")));
        assert_eq!(
            EgressPolicy::parse("localhost"),
            Err(InvalidAllowList("localhost".into()))
        );
    }

    #[test]
    fn literal_hosts_are_checked_before_sending() {
        let egress = Egress::new(EgressPolicy::public_only(), Timeouts::default());
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            egress.check(&url("https://169.254.169.254/latest/meta-data")),
            Err(Refused::Address(ip("169.254.169.254")))
        );
        // The URL parser normalises the odd spellings of loopback first.
        assert_eq!(
            egress.check(&url("https://0x7f.1/")),
            Err(Refused::Address(ip("127.0.0.1")))
        );
        assert_eq!(
            egress.check(&url("https://[::ffff:7f00:1]/")),
            Err(Refused::Address(ip("::ffff:127.0.0.1")))
        );
        assert_eq!(
            egress.check(&url("http://example.com/")),
            Err(Refused::PlainHttp)
        );
        assert_eq!(
            egress.check(&url("ftp://example.com/")),
            Err(Refused::Scheme)
        );
        assert_eq!(
            egress.check(&url("https://example.com/")),
            Ok(Scheme::Https)
        );
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_never_connect() {
        let egress = Egress::new(EgressPolicy::public_only(), Timeouts::default());
        let error = egress
            .request(Method::GET, Url::parse("https://localhost:9/").unwrap())
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        let chain = format!("{:?}", error);
        assert!(chain.contains("not a public address"), "{chain}");
    }
}
