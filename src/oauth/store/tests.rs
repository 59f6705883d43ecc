//! Unit tests of `oauth/store.rs`.

use super::*;

fn record(name: &str) -> TokenRecord {
    TokenRecord {
        server: name.into(),
        server_url: "http://127.0.0.1:1/mcp".into(),
        resource: Some("http://127.0.0.1:1/mcp".into()),
        issuer: "http://127.0.0.1:2".into(),
        token_endpoint: "http://127.0.0.1:2/token".into(),
        client: ClientRegistration {
            client_id: "c".into(),
            client_secret: Some(Secret::new("s3cret")),
            auth_method: AuthMethod::ClientSecretBasic,
            source: "dynamic".into(),
            redirect_uri: None,
        },
        access_token: Secret::new("at-123"),
        refresh_token: Some(Secret::new("rt-456")),
        expires_at: Some(now_secs() + 3600),
        scopes: vec!["a".into()],
        step_up_scopes: vec![],
        updated_at: now_secs(),
    }
}

#[test]
fn names_that_could_escape_the_directory_are_refused() {
    for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "x\0y"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    for good in ["github", "my-server_2", "a.b"] {
        assert!(check_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn save_is_0600_in_a_0700_dir_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("tokens"));
    let _lock = store.lock("gh").unwrap();
    store.save(&record("gh")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.path_of("gh").unwrap()), 0o600);
    let back = store.load("gh").unwrap().unwrap();
    assert_eq!(back.access_token.expose(), "at-123");
    assert!(!format!("{back:?}").contains("at-123"));
    assert!(!format!("{back:?}").contains("s3cret"));
    assert!(store.remove("gh").unwrap());
    assert!(store.load("gh").unwrap().is_none());
}

#[test]
fn a_second_login_lock_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    let held = store.try_login_lock("gh").unwrap();
    let err = store.try_login_lock("gh").unwrap_err().to_string();
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    drop(held);
    store.try_login_lock("gh").unwrap();
}

#[test]
fn a_damaged_file_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path());
    std::fs::write(store.path_of("gh").unwrap(), "{not json").unwrap();
    let err = store.load("gh").unwrap_err().to_string();
    assert!(err.contains("mcp-bridge logout gh"), "{err}");
}
