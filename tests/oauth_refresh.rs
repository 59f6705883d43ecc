//! The gateway's `TokenProvider` against a mock authorization server on a real socket: one
//! refresh for many concurrent callers, refresh on 401, a refresh made by another process picked
//! up from the store, and the login-required errors.

mod common;

use common::oauth::{self, Options};
use mcp_bridge::oauth::store::{Secret, now_secs};
use mcp_bridge::oauth::{LoginReason, Store, TokenError, TokenProvider};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// A stored login for `gh` at the mock, with a client the mock knows.
fn seed(mock: &oauth::Mock, store: &Store, access: &str, expires_at: u64, refresh: Option<&str>) {
    mock.seed("gh", store, access, expires_at, refresh);
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_callers_share_one_refresh() {
    let mock = oauth::start(Options {
        refresh_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    seed(&mock, &store, "at-old", now_secs() + 30, Some("rt-old"));
    let provider = Arc::new(TokenProvider::new("gh", store.clone()).unwrap());

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(within(c).await.unwrap().expect("every caller gets a token"));
    }
    assert_eq!(mock.seen().refreshes, 1, "one refresh for all callers");
    assert!(
        tokens.iter().all(|t| t == &tokens[0] && t != "at-old"),
        "{tokens:?}"
    );
    let stored = store.load("gh").unwrap().unwrap();
    assert_eq!(stored.access_token.expose(), tokens[0]);
    assert_ne!(
        stored.refresh_token.unwrap().expose(),
        "rt-old",
        "rotated refresh token kept"
    );
    // Fresh now: no more refreshes.
    assert_eq!(provider.access_token().await.unwrap(), tokens[0]);
    assert_eq!(mock.seen().refreshes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_refreshes_once_and_later_401s_on_the_old_token_reuse_the_new_one() {
    let mock = oauth::start(Options::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    seed(&mock, &store, "at-revoked", now_secs() + 3600, Some("rt-1"));
    let provider = Arc::new(TokenProvider::new("gh", store.clone()).unwrap());
    assert_eq!(provider.access_token().await.unwrap(), "at-revoked");

    let calls: Vec<_> = (0..10)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.refresh_after_401("at-revoked").await })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(within(c).await.unwrap().unwrap());
    }
    assert_eq!(mock.seen().refreshes, 1);
    assert!(tokens.iter().all(|t| t == &tokens[0] && t != "at-revoked"));

    // Another process (another provider on the same store) already has the new token: it reads
    // it from the store instead of spending the refresh token again.
    let other = TokenProvider::new("gh", store.clone()).unwrap();
    assert_eq!(
        other.refresh_after_401("at-revoked").await.unwrap(),
        tokens[0]
    );
    assert_eq!(mock.seen().refreshes, 1);
}

#[tokio::test]
async fn without_a_usable_token_the_error_names_the_command() {
    let mock = oauth::start(Options::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());

    let provider = TokenProvider::new("gh", store.clone())
        .unwrap()
        .with_config_hint(std::path::Path::new("/etc/mcp.json"));
    let err = provider.access_token().await.unwrap_err();
    assert_eq!(err.reason(), "login-required");
    assert!(matches!(&err, TokenError::LoginRequired(l) if l.reason == LoginReason::NotLoggedIn));
    assert!(
        err.to_string()
            .contains("run `mcp-bridge login gh --config /etc/mcp.json` on the host"),
        "{err}"
    );

    // Expired, no refresh token.
    seed(&mock, &store, "at-1", now_secs() - 5, None);
    let provider = TokenProvider::new("gh", store.clone()).unwrap();
    let err = provider.access_token().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::LoginRequired(l) if l.reason == LoginReason::Expired),
        "{err}"
    );

    // A refresh token the server no longer accepts.
    seed(&mock, &store, "at-2", now_secs() - 5, None);
    {
        let _lock = store.lock("gh").unwrap();
        let mut rec = store.load("gh").unwrap().unwrap();
        rec.refresh_token = Some(Secret::new("rt-unknown"));
        store.save(&rec).unwrap();
    }
    let err = provider.access_token().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::LoginRequired(l) if l.reason == LoginReason::RefreshRejected),
        "{err}"
    );
    assert!(!err.to_string().contains("rt-unknown"));
    // Not asked again on every request.
    let before = mock.seen().token_forms.len();
    assert!(provider.access_token().await.is_err());
    assert_eq!(mock.seen().token_forms.len(), before);
}

#[tokio::test]
async fn insufficient_scope_is_recorded_for_the_next_login() {
    let mock = oauth::start(Options::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    seed(&mock, &store, "at-1", now_secs() + 3600, Some("rt-1"));
    let provider = TokenProvider::new("gh", store.clone()).unwrap();
    assert_eq!(provider.access_token().await.unwrap(), "at-1");
    let err = provider
        .insufficient_scope(r#"Bearer error="insufficient_scope", scope="mcp:read mcp:write", resource_metadata="x""#)
        .await;
    assert_eq!(err.reason(), "login-required");
    let text = err.to_string();
    assert!(
        text.contains("mcp:read mcp:write") && text.contains("mcp-bridge login gh"),
        "{text}"
    );
    let rec = store.load("gh").unwrap().unwrap();
    assert_eq!(rec.step_up_scopes, vec!["mcp:write".to_string()]);

    // The user logs in again on the host: the provider uses the new token, not its cache.
    seed(
        &mock,
        &store,
        "at-stepped-up",
        now_secs() + 3600,
        Some("rt-2"),
    );
    assert_eq!(provider.access_token().await.unwrap(), "at-stepped-up");
}

#[tokio::test]
async fn the_store_path_cannot_be_escaped_by_a_server_name() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(TokenProvider::new("../../etc/passwd", Store::at(tmp.path())).is_err());
}

#[tokio::test]
async fn an_unreachable_authorization_server_is_a_passing_failure() {
    let mock = oauth::start(Options::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    // Inside the refresh margin but not expired; the token endpoint refuses connections.
    seed(&mock, &store, "at-1", now_secs() + 30, Some("rt-1"));
    {
        let _lock = store.lock("gh").unwrap();
        let mut rec = store.load("gh").unwrap().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        rec.token_endpoint = format!("http://{}/token", closed.local_addr().unwrap());
        drop(closed);
        store.save(&rec).unwrap();
    }
    let provider = TokenProvider::new("gh", store.clone()).unwrap();
    assert_eq!(
        within(provider.access_token()).await.unwrap(),
        "at-1",
        "still valid: used"
    );
    let err = within(provider.refresh_after_401("at-1"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token-unavailable", "{err}");
}
