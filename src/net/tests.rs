//! Unit tests of `net.rs`.

use super::*;

#[test]
fn parses_listen_addresses() {
    assert_eq!(
        "127.0.0.1:0".parse::<ListenAddr>().unwrap(),
        ListenAddr::Tcp("127.0.0.1:0".into())
    );
    assert_eq!(
        "[::1]:9000".parse::<ListenAddr>().unwrap(),
        ListenAddr::Tcp("[::1]:9000".into())
    );
    assert_eq!(
        "unix:/tmp/x.sock".parse::<ListenAddr>().unwrap(),
        ListenAddr::Unix("/tmp/x.sock".into())
    );
    assert!("9000".parse::<ListenAddr>().is_err());
    assert!("host:port".parse::<ListenAddr>().is_err());
    assert!("unix:".parse::<ListenAddr>().is_err());
}

#[tokio::test]
async fn unix_socket_modes_stale_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let addr = ListenAddr::Unix(path.clone());
    let first = Listener::bind(&addr, 0o600).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = Listener::bind(&addr, 0o600).await.unwrap_err();
    assert!(matches!(err, BindError::Live(_)), "{err}");
    // A socket file nobody listens on any more is stale: leak it, then bind again.
    let (l, mut file) = match first.into_iter().next().unwrap() {
        Listener::Unix(l, f) => (l, f),
        Listener::Tcp(_) => unreachable!(),
    };
    drop(l);
    // The gateway that made it is gone: so is its lock.
    drop(file.1.take());
    std::mem::forget(file);
    let again = Listener::bind(&addr, 0o660).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    drop(again);
    assert!(!path.exists());
    std::fs::write(&path, b"not a socket").unwrap();
    let err = Listener::bind(&addr, 0o600).await.unwrap_err();
    assert!(matches!(err, BindError::NotSocket(_)), "{err}");
    // No temporary directory or socket is left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["s.sock", "s.sock.lock"]);
}

#[tokio::test]
async fn concurrent_starts_on_one_path_keep_one_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let addr = ListenAddr::Unix(path.clone());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(
            async move { Listener::bind(&addr, 0o600).await },
        ));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(l) => won.push(l),
            Err(e) => assert!(matches!(e, BindError::Live(_)), "{e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one start wins");
    std::os::unix::net::UnixStream::connect(&path).expect("the winner's socket is in place");
}
