//! Name resolution for the HTTP client without the C library's resolver. A statically linked
//! glibc `getaddrinfo` loads NSS modules at run time, which a minimal container does not have;
//! so `localhost` (RFC 6761: always loopback) and IP literals are answered here, and every other
//! name goes to hickory-resolver, which reads `/etc/hosts` and `/etc/resolv.conf` itself.

use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

/// A [`Resolve`] for reqwest that never calls `getaddrinfo`.
#[derive(Clone, Default)]
pub struct Resolver {
    /// Built on first use: a client that only talks to `localhost` never reads resolv.conf.
    dns: Arc<OnceLock<Result<TokioResolver, String>>>,
}

/// Why a name has no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system's resolver configuration could not be read.
    #[error("cannot resolve {name}: no DNS configuration ({reason})")]
    #[allow(missing_docs)]
    NoConfig { name: String, reason: String },
    /// The lookup itself failed or found nothing.
    #[error("cannot resolve {name}: {reason}")]
    #[allow(missing_docs)]
    Lookup { name: String, reason: String },
}

/// The addresses a name has without asking anyone: IP literals (with or without brackets) and
/// `localhost` or any name under `.localhost`.
pub fn fixed(name: &str) -> Option<Vec<IpAddr>> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    (lower == "localhost" || lower.ends_with(".localhost")).then(|| {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    })
}

impl Resolver {
    /// Resolves `name` to addresses (port 0), the way the HTTP client does.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Some(ips) = fixed(name) {
            return Ok(ips);
        }
        let dns = self.dns.get_or_init(|| {
            TokioResolver::builder_tokio()
                .and_then(|b| b.build())
                .map_err(|e| e.to_string())
        });
        let dns = dns.as_ref().map_err(|reason| ResolveError::NoConfig {
            name: name.to_owned(),
            reason: reason.clone(),
        })?;
        let found = dns
            .lookup_ip(name)
            .await
            .map_err(|e| ResolveError::Lookup {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(found.iter().collect())
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let ips = this.lookup(name.as_str()).await?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_and_literals_need_no_lookup() {
        assert_eq!(
            fixed("127.0.0.1"),
            Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
        );
        assert_eq!(fixed("[::1]"), Some(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]));
        for name in ["localhost", "LOCALHOST.", "api.localhost"] {
            assert_eq!(
                fixed(name).unwrap()[0],
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                "{name}"
            );
        }
        assert_eq!(fixed("example.com"), None);
        assert_eq!(fixed("localhost.example"), None);
    }

    #[tokio::test]
    async fn resolver_answers_localhost_without_dns() {
        let ips = Resolver::default().lookup("localhost").await.unwrap();
        assert!(ips.iter().all(IpAddr::is_loopback));
    }
}
