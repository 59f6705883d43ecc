//! `mcp-bridge login`, `login --status` and `logout` against a mock authorization server and
//! protected MCP resource on real sockets, with a `$BROWSER` script that approves at once.

mod common;

use common::oauth::{self, LOGIN_LIMIT, Options, World};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

const LIMIT: Duration = LOGIN_LIMIT;

fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn stored(world: &World) -> Value {
    serde_json::from_slice(&std::fs::read(world.token_file()).unwrap()).unwrap()
}

/// Reads the child's stderr until the authorization URL appears.
async fn authorization_url(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("login: {line}");
            if let Some(url) = line
                .trim()
                .strip_prefix("http")
                .filter(|_| line.starts_with("  http"))
            {
                return format!("http{url}");
            }
        }
        panic!("login ended without printing the authorization URL");
    })
    .await
    .expect("no authorization URL in time");
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found
}

#[tokio::test]
async fn login_stores_a_private_token_file_and_status_never_shows_it() {
    let mock = oauth::start(Options::default()).await;
    let world = World::new(&mock.mcp_url(), json!({}));
    let (ok, out) = world.login().await;
    assert!(ok, "login failed:\n{out}");
    assert!(out.contains("Logged in to `gh`"), "{out}");

    assert_eq!(mode(&world.state().join("tokens")), 0o700);
    assert_eq!(mode(&world.token_file()), 0o600);
    let rec = stored(&world);
    let token = rec["access_token"].as_str().unwrap().to_string();
    assert_eq!(rec["resource"], mock.mcp_url());
    assert_eq!(rec["client"]["source"], "dynamic");
    assert_eq!(rec["client"]["auth_method"], "client_secret_basic");
    {
        let seen = mock.seen();
        assert_eq!(seen.registrations, 1);
        assert_eq!(seen.pkce_verified, 1, "the mock verified PKCE");
        assert_eq!(seen.pkce_failed, 0);
        let auth = &seen.authorize[0];
        assert_eq!(auth["scope"], "mcp:read", "scope from WWW-Authenticate");
        assert_eq!(auth["resource"], mock.mcp_url());
        assert_eq!(seen.token_forms[0]["resource"], mock.mcp_url());
        assert!(
            !seen.token_forms[0].contains_key("client_secret"),
            "basic auth, not post"
        );
    }
    // The stored token works against the resource.
    let resp = plain_client()
        .post(mock.mcp_url())
        .bearer_auth(&token)
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (ok, out) = world.run(&["login", "--status"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("gh") && out.contains("mcp:read") && out.contains("expires in"),
        "{out}"
    );
    let secret = rec["client"]["client_secret"].as_str().unwrap();
    let refresh = rec["refresh_token"].as_str().unwrap();
    for s in [token.as_str(), secret, refresh] {
        assert!(!out.contains(s), "status printed a secret:\n{out}");
    }

    let (ok, out) = world.run(&["logout", "gh"]).await;
    assert!(ok && out.contains("Logged out"), "{out}");
    assert!(!world.token_file().exists());
    let (ok, out) = world.run(&["login", "--status"]).await;
    assert!(ok && out.contains("No OAuth logins"), "{out}");
}

#[tokio::test]
async fn a_forged_state_is_refused_and_nothing_is_stored() {
    let mock = oauth::start(Options {
        wrong_state: true,
        ..Options::default()
    })
    .await;
    let world = World::new(&mock.mcp_url(), json!({}));
    let (ok, out) = world.login().await;
    assert!(!ok, "login accepted a forged state:\n{out}");
    assert!(out.contains("`state` did not match"), "{out}");
    assert!(!world.token_file().exists());
    assert!(mock.seen().token_forms.is_empty(), "no code was exchanged");
}

#[tokio::test]
async fn a_second_login_is_refused_while_one_runs() {
    let mock = oauth::start(Options::default()).await;
    let world = World::new(&mock.mcp_url(), json!({}));
    let config = world.config.to_str().unwrap().to_string();
    let mut first = world
        .command(&[
            "login",
            "gh",
            "--config",
            &config,
            "--no-browser",
            "--timeout",
            "20s",
        ])
        .spawn()
        .unwrap();
    let url = authorization_url(&mut first).await;

    let (ok, out) = world.login().await;
    assert!(!ok, "{out}");
    assert!(out.contains("already running"), "{out}");
    assert!(
        out.contains(&first.id().unwrap().to_string()),
        "names the process: {out}"
    );

    // The user approves in their own browser; the first login completes.
    let resp = plain_client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("close this tab"));
    let status = tokio::time::timeout(LIMIT, first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(world.token_file().exists());
}

#[tokio::test]
async fn a_preregistered_client_skips_registration_and_uses_its_secret() {
    let mock = oauth::start(Options {
        preregistered: Some(("pre-client".into(), "pre-secret".into())),
        auth_methods: vec!["client_secret_post".into()],
        challenge_scope: None,
        ..Options::default()
    })
    .await;
    let world = World::new(
        &mock.mcp_url(),
        json!({"clientId": "pre-client", "clientSecretEnv": "TEST_OAUTH_SECRET"}),
    );
    let config = world.config.to_str().unwrap().to_string();
    let out = tokio::time::timeout(
        LIMIT,
        world
            .command(&["login", "gh", "--config", &config, "--timeout", "20s"])
            .env("TEST_OAUTH_SECRET", "pre-secret")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("pre-secret"));
    let seen = mock.seen();
    assert_eq!(seen.registrations, 0);
    assert_eq!(
        seen.token_forms[0]["client_secret"], "pre-secret",
        "client_secret_post"
    );
    // No scope in the challenge: all of the resource's scopes_supported.
    assert_eq!(seen.authorize[0]["scope"], "mcp:read mcp:write");
    assert_eq!(stored(&world)["client"]["source"], "preregistered");
}

#[tokio::test]
async fn bad_names_and_missing_servers_get_clear_errors() {
    let world = World::new("http://127.0.0.1:9/mcp", json!({}));
    let config = world.config.to_str().unwrap().to_string();
    let (ok, out) = world.run(&["login", "../evil", "--config", &config]).await;
    assert!(!ok && out.contains("not a usable server name"), "{out}");
    let (ok, out) = world.run(&["login", "other", "--config", &config]).await;
    assert!(!ok && out.contains("no server `other`"), "{out}");
    let (ok, out) = world
        .run(&["login", "gh", "--url", "http://example.com/mcp"])
        .await;
    assert!(!ok && out.contains("needs https"), "{out}");
}

#[tokio::test]
async fn a_login_after_a_step_up_asks_for_the_old_and_the_new_scopes() {
    let mock = oauth::start(Options::default()).await;
    let world = World::new(&mock.mcp_url(), json!({}));
    let (ok, out) = world.login().await;
    assert!(ok, "{out}");
    // What the gateway's TokenProvider::insufficient_scope records after a 403.
    let mut rec = stored(&world);
    rec["step_up_scopes"] = json!(["mcp:write"]);
    std::fs::write(world.token_file(), rec.to_string()).unwrap();
    let (ok, out) = world.run(&["login", "--status"]).await;
    assert!(ok && out.contains("step-up wanted: mcp:write"), "{out}");

    let (ok, out) = world.login().await;
    assert!(ok, "{out}");
    let seen = mock.seen();
    assert_eq!(seen.authorize[1]["scope"], "mcp:read mcp:write");
    assert_eq!(
        seen.registrations, 2,
        "a new loopback port means a new registration"
    );
    assert!(
        stored(&world).get("step_up_scopes").is_none(),
        "cleared by the login"
    );
}

#[tokio::test]
async fn a_forged_callback_without_the_state_ends_the_login_without_a_token() {
    let mock = oauth::start(Options::default()).await;
    let world = World::new(&mock.mcp_url(), json!({}));
    let config = world.config.to_str().unwrap().to_string();
    let mut login = world
        .command(&[
            "login",
            "gh",
            "--config",
            &config,
            "--no-browser",
            "--timeout",
            "20s",
        ])
        .spawn()
        .unwrap();
    let url = url::Url::parse(&authorization_url(&mut login).await).unwrap();
    let redirect = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // A hostile page on the same machine guesses the port and sends its own code.
    let resp = plain_client()
        .get(format!("{redirect}?code=attacker-code"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let status = tokio::time::timeout(LIMIT, login.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(!world.token_file().exists());
    assert!(
        mock.seen().token_forms.is_empty(),
        "the forged code was never exchanged"
    );
}
