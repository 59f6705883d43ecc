//! Listeners for `serve`: TCP addresses and Unix domain sockets behind one type that axum can
//! serve, with the peer (address, or uid/pid of a Unix-socket client) as connection info.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Where to listen: `HOST:PORT`, `[::1]:PORT`, or `unix:/path/to.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A host (name or IP) and port; a name may resolve to several addresses.
    Tcp(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path, e.g. unix:/run/mcp.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("`{s}` is not HOST:PORT, [IPv6]:PORT or unix:/path"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("`{s}` is not HOST:PORT, [IPv6]:PORT or unix:/path"));
        }
        Ok(ListenAddr::Tcp(s.to_owned()))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => f.write_str(a),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The host name does not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why it does not resolve.
        source: io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address as given.
        addr: String,
        /// Why it cannot be bound.
        source: io::Error,
    },
    /// A live socket is at the path already.
    #[error("another process is already listening on {0}; stop it or choose another path")]
    Live(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotSocket(PathBuf),
}

/// The other end of a connection, for logs.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A TCP client's address.
    Tcp(SocketAddr),
    /// Credentials of a Unix-socket client (SO_PEERCRED), when the kernel gave them.
    Unix {
        /// The client's user id.
        uid: Option<u32>,
        /// The client's process id.
        pid: Option<i32>,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "{a}"),
            Peer::Unix { uid, pid } => {
                f.write_str("unix")?;
                if let Some(uid) = uid {
                    write!(f, " uid={uid}")?;
                }
                if let Some(pid) = pid {
                    write!(f, " pid={pid}")?;
                }
                Ok(())
            }
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// The socket file is removed when the listener is dropped.
    Unix(UnixListener, SocketFile),
}

/// Removes a socket file when dropped (on shutdown). Holds the lock on `PATH.lock` while it
/// lives, so a second gateway starting on the same path can neither bind it nor remove it.
#[derive(Debug)]
pub struct SocketFile(PathBuf, Option<std::fs::File>);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The lock goes only after the socket: a new start never finds ours half-removed.
        drop(self.1.take());
    }
}

impl Listener {
    /// Binds every address `addr` names. Unix sockets get file mode `mode`.
    pub async fn bind(addr: &ListenAddr, mode: u32) -> Result<Vec<Listener>, BindError> {
        match addr {
            ListenAddr::Tcp(a) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host(a.as_str())
                    .await
                    .map_err(|source| BindError::Resolve {
                        addr: a.clone(),
                        source,
                    })?
                    .collect();
                let mut out = Vec::new();
                for sa in addrs {
                    let l = TcpListener::bind(sa)
                        .await
                        .map_err(|source| BindError::Io {
                            addr: sa.to_string(),
                            source,
                        })?;
                    out.push(Listener::Tcp(l));
                }
                Ok(out)
            }
            ListenAddr::Unix(path) => Ok(vec![bind_unix(path, mode)?]),
        }
    }

    /// How to reach this listener, as printed in the `listening on` line.
    pub fn url(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => "http://?".into(),
            },
            Listener::Unix(_, file) => format!("unix:{}", file.0.display()),
        }
    }
}

/// Binds a Unix socket under a temporary name, sets its mode, then renames it into place, so the
/// final path never exists with looser permissions than asked for.
fn bind_unix(path: &Path, mode: u32) -> Result<Listener, BindError> {
    let io_err = |source| BindError::Io {
        addr: format!("unix:{}", path.display()),
        source,
    };
    let lock = lock_beside(path).map_err(io_err)?;
    let Some(lock) = lock else {
        return Err(BindError::Live(path.to_owned()));
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(BindError::NotSocket(path.to_owned()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(BindError::Live(path.to_owned())),
            Err(_) => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
                std::fs::remove_file(path).map_err(io_err)?;
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io_err(io::Error::other(e.to_string())))?;
    // Bound inside a directory only we can enter (0700), given its mode there, then moved into
    // place: nobody can connect while the socket has the umask's mode.
    let mut dir_name = std::ffi::OsString::from(".");
    dir_name.push(path.file_name().unwrap_or_default());
    dir_name.push(format!(".{}.d", hex(&suffix)));
    let dir = path.with_file_name(dir_name);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err)?;
    }
    let tmp = dir.join("s");
    let placed = UnixListener::bind(&tmp).and_then(|l| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&dir);
    let listener = placed.map_err(io_err)?;
    Ok(Listener::Unix(
        listener,
        SocketFile(path.to_owned(), Some(lock)),
    ))
}

/// Takes an exclusive lock on `PATH.lock` (created if missing, mode 0600); `None` when another
/// process holds it. The file stays: removing it would let two starters lock different files.
fn lock_beside(path: &Path) -> io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path.with_file_name(name))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An accepted connection.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix-socket connection.
    Unix(UnixStream),
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Stream, Peer) {
        loop {
            let accepted = match self {
                Listener::Tcp(l) => TcpListener::accept(l).await.map(|(s, a)| {
                    // Small JSON-RPC messages should not wait for Nagle's algorithm.
                    let _ = s.set_nodelay(true);
                    (Stream::Tcp(s), Peer::Tcp(a))
                }),
                Listener::Unix(l, _) => UnixListener::accept(l).await.map(|(s, _)| {
                    let peer = match s.peer_cred() {
                        Ok(c) => Peer::Unix {
                            uid: Some(c.uid()),
                            pid: c.pid(),
                        },
                        Err(_) => Peer::Unix {
                            uid: None,
                            pid: None,
                        },
                    };
                    tracing::info!(peer = %peer, "connection on the Unix socket");
                    (Stream::Unix(s), peer)
                }),
            };
            match accepted {
                Ok(pair) => return pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Peer::Tcp),
            Listener::Unix(..) => Ok(Peer::Unix {
                uid: None,
                pid: None,
            }),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Peer {
        stream.remote_addr().clone()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests;
