//! doctor's first steps: the URL, then the way to the server (a Unix socket, or name
//! resolution, a TCP connection and TLS).

use super::{Check, DoctorArgs, Target};
use crate::cli::{ConnectArgs, TransportChoice};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Parses the URL and the headers; `None` (after a failed check) when nothing else can run.
pub(super) fn check_url(args: &DoctorArgs, url: &str, checks: &mut Vec<Check>) -> Option<Target> {
    let connect = ConnectArgs {
        url: url.to_owned(),
        transport: TransportChoice::Auto,
        headers: args.headers.clone(),
        unix: args.unix.clone(),
        connect_timeout: args.timeout,
        max_message_size: 64 << 20,
        ca_cert: args.ca_cert.clone(),
        session_key: None,
    };
    match crate::connect::Config::try_from(connect) {
        Ok(config) if config.url.host_str().is_some() => {
            checks.push(Check::pass("url", config.url.as_str()));
            Some(Target {
                url: config.url,
                unix: args.unix.clone(),
                header_specs: args.headers.clone(),
                headers: config.headers,
                ca_cert: args.ca_cert.clone(),
                timeout: args.timeout,
                pings: args.pings,
            })
        }
        Ok(config) => {
            checks.push(Check::fail(
                "url",
                format!("`{}` has no host", config.url),
                "write the whole endpoint, e.g. http://127.0.0.1:9000/mcp",
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                "url",
                format!("{e:#}"),
                "write the whole endpoint, e.g. http://127.0.0.1:9000/mcp (or http://localhost/mcp \
                 with --unix), and headers as `Name: value`",
            ));
            None
        }
    }
}

/// The socket file exists, is a socket, and accepts a connection.
pub(super) async fn check_socket(path: &Path, checks: &mut Vec<Check>) -> bool {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            checks.push(Check::fail(
                "socket",
                format!("socket file missing: {shown}"),
                format!(
                    "start `mcp-bridge serve --listen unix:{shown} -- CMD` on the host, or fix the \
                     path (in a container: is the socket's directory mounted?)"
                ),
            ));
            return false;
        }
        Err(e) => {
            checks.push(Check::fail(
                "socket",
                format!("cannot look at {shown}: {e}"),
                "check the permissions of the directories on the path",
            ));
            return false;
        }
    };
    let owner = format!(
        "owner uid {}, mode {:04o}",
        meta.uid(),
        meta.mode() & 0o7777
    );
    if !meta.file_type().is_socket() {
        checks.push(Check::fail(
            "socket",
            format!("{shown} is not a socket ({owner})"),
            "point --unix at the socket serve listens on (serve --listen unix:PATH)",
        ));
        return false;
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => {
            checks.push(Check::pass(
                "socket",
                format!("connected to {shown} ({owner})"),
            ));
            true
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let me = rustix::process::getuid().as_raw();
            checks.push(Check::fail(
                "socket",
                format!("permission denied on {shown} ({owner}; this process runs as uid {me})"),
                format!(
                    "run as uid {} or give the socket a group you share: serve --socket-mode 0660 \
                     (and a matching group on the directory)",
                    meta.uid()
                ),
            ));
            false
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            checks.push(Check::fail(
                "socket",
                format!("connection refused on {shown}: nothing listens (a stale socket file?)"),
                format!("start (or restart) `mcp-bridge serve --listen unix:{shown} -- CMD`"),
            ));
            false
        }
        Err(e) => {
            checks.push(Check::fail(
                "socket",
                format!("cannot connect to {shown}: {e}"),
                "check that serve runs and listens on this socket",
            ));
            false
        }
    }
}

/// Resolves the host, connects over TCP, and (for https) checks TLS.
pub(super) async fn check_tcp(t: &Target, checks: &mut Vec<Check>) -> bool {
    let host = t.url.host_str().unwrap_or_default().to_owned();
    let port = t.url.port_or_known_default().unwrap_or(80);
    let resolver = crate::resolve::Resolver::default();
    let lookup = resolver.lookup(&host);
    let ips = match tokio::time::timeout(t.timeout, lookup).await {
        Ok(Ok(ips)) if !ips.is_empty() => ips,
        Ok(Ok(_)) => {
            checks.push(Check::fail(
                "resolve",
                format!("{host} has no address"),
                "check the name, or use an IP address in the URL",
            ));
            return false;
        }
        Ok(Err(e)) => {
            checks.push(Check::fail(
                "resolve",
                e.to_string(),
                "check the name (and /etc/hosts, /etc/resolv.conf), or use an IP address; in \
                 Docker the host is often host.docker.internal (--add-host=host.docker.internal:host-gateway)",
            ));
            return false;
        }
        Err(_) => {
            checks.push(Check::fail(
                "resolve",
                format!("resolving {host} took over {:?}", t.timeout),
                "check the DNS servers in /etc/resolv.conf, or use an IP address",
            ));
            return false;
        }
    };
    let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
    checks.push(Check::pass(
        "resolve",
        format!("{host} → {}", shown.join(", ")),
    ));

    let mut last = String::new();
    let mut refused = false;
    let mut connected = None;
    for ip in &ips {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(t.timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                connected = Some(addr);
                break;
            }
            Ok(Err(e)) => {
                refused |= e.kind() == ErrorKind::ConnectionRefused;
                last = format!("{addr}: {e}");
            }
            Err(_) => last = format!("{addr}: no answer within {:?}", t.timeout),
        }
    }
    let Some(addr) = connected else {
        let fix = match refused {
            true => format!(
                "nothing listens on port {port} of {host}: start `mcp-bridge serve --listen \
                 {host}:{port} -- CMD` there, or correct the port in the URL"
            ),
            false => "check that the host is reachable from here (firewall, container network, \
                      serve listening on 127.0.0.1 only while you connect from elsewhere)"
                .to_owned(),
        };
        checks.push(Check::fail(
            "connect",
            format!("cannot connect: {last}"),
            fix,
        ));
        return false;
    };
    checks.push(Check::pass("connect", format!("TCP connection to {addr}")));
    if t.url.scheme() != "https" {
        return true;
    }
    let (ca_cert, timeout) = (t.ca_cert.clone(), t.timeout);
    let check = tokio::task::spawn_blocking(move || check_tls(addr, host, ca_cert, timeout))
        .await
        .unwrap_or_else(|e| {
            Check::fail("tls", format!("the TLS check failed: {e}"), "report a bug")
        });
    let ok = check.status == super::Status::Pass;
    checks.push(check);
    ok
}

/// Wraps the verifier `connect` uses (the platform's, plus `--ca-cert`) and keeps the
/// certificate it was shown, to describe it whatever the verdict.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A blocking TLS handshake with `addr`, verified as `connect` would verify it.
fn check_tls(
    addr: SocketAddr,
    host: String,
    ca_cert: Option<std::path::PathBuf>,
    timeout: std::time::Duration,
) -> Check {
    let fail = |detail: String, fix: &str| Check::fail("tls", detail, fix);
    let mut extra = Vec::new();
    if let Some(path) = &ca_cert {
        match CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
            Ok(certs) if !certs.is_empty() => extra = certs,
            Ok(_) => {
                return fail(
                    format!("--ca-cert {}: no certificate", path.display()),
                    "pass a PEM file",
                );
            }
            Err(e) => {
                return fail(
                    format!("--ca-cert {}: {e}", path.display()),
                    "pass a PEM file",
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()) {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    format!("cannot load trusted certificates: {e}"),
                    "check the system's CA store",
                );
            }
        };
    let recording = Arc::new(Recording {
        inner: Arc::new(verifier),
        seen: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(recording.clone())
                .with_no_client_auth()
        });
    let (Ok(config), Ok(name)) = (config, ServerName::try_from(host.clone())) else {
        return fail(format!("cannot set up TLS for {host}"), "report a bug");
    };
    let result = (|| -> Result<(), rustls::Error> {
        let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(io_err)?;
        tcp.set_read_timeout(Some(timeout)).map_err(io_err)?;
        tcp.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| match e.into_inner() {
                    Some(inner) => match inner.downcast::<rustls::Error>() {
                        Ok(tls) => *tls,
                        Err(other) => rustls::Error::General(other.to_string()),
                    },
                    None => rustls::Error::General("connection closed during the handshake".into()),
                })?;
        }
        Ok(())
    })();
    let seen = recording.seen.lock().ok().and_then(|s| s.clone());
    let about = seen.as_deref().map(describe).unwrap_or_default();
    match result {
        Ok(()) => Check::pass("tls", about),
        Err(rustls::Error::InvalidCertificate(e)) => {
            use rustls::CertificateError as C;
            let fix = match &e {
                C::UnknownIssuer | C::BadSignature => format!(
                    "this machine does not trust the certificate's issuer: pass the CA that \
                     signed it (PEM) with --ca-cert FILE, to doctor and to connect{}",
                    match ca_cert {
                        Some(_) => " (the --ca-cert given did not sign it)",
                        None => "",
                    }
                ),
                C::Expired | C::ExpiredContext { .. } => {
                    "the server's certificate has expired: renew it".to_owned()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    "the certificate is not for `{host}`: use a name it was issued for in the URL"
                ),
                _ => "fix the server's certificate, or trust its CA with --ca-cert FILE".to_owned(),
            };
            Check::fail("tls", format!("certificate refused: {e:?}; {about}"), fix)
        }
        Err(e) => fail(
            format!("TLS handshake failed: {e}"),
            "check that the port speaks TLS (an http:// server answers https:// like this)",
        ),
    }
}

fn io_err(e: std::io::Error) -> rustls::Error {
    rustls::Error::General(e.to_string())
}

/// Subject, issuer and expiry of a DER certificate.
fn describe(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => format!(
            "subject `{}`, issuer `{}`, expires {}{}",
            cert.subject(),
            cert.issuer(),
            cert.validity().not_after,
            if cert.validity().is_valid() {
                ""
            } else {
                " (not valid now)"
            },
        ),
        Err(e) => format!("unreadable certificate: {e}"),
    }
}
