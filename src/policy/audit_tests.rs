//! Tests of the audit log: the record format, redaction, the never-blocking queue, reopening.

use super::*;
use serde_json::json;
use std::sync::Mutex;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn config(v: Value) -> AuditConfig {
    AuditConfig::parse(&v, "mcpBridge.audit").unwrap()
}

fn record(method: &str) -> Record {
    Record {
        time: SystemTime::now(),
        client: Some("ci".into()),
        peer_uid: Some(1000),
        peer_pid: None,
        session: Some("s-1".into()),
        key: Some("k".into()),
        server: Some("everything".into()),
        method: method.to_owned().into(),
        name: Some("echo".into()),
        duration: Duration::from_micros(1500),
        outcome: Outcome::Ok,
        bytes_in: 10,
        bytes_out: 20,
        request: None,
        answer: None,
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A sink that stops on its first write until released: a disk that hangs.
struct Stuck {
    entered: Option<std_mpsc::Sender<()>>,
    release: std_mpsc::Receiver<()>,
    inner: Capture,
}

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(entered) = self.entered.take() {
            entered.send(()).unwrap();
            self.release.recv_timeout(WAIT).unwrap();
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_line_has_every_field_and_no_arguments_by_default() {
    let out = Capture::default();
    let log = AuditLog::with_writer(&config(json!({"file": "stderr"})), Box::new(out.clone()));
    assert!(!log.wants_arguments());
    log.log(record("tools/call"));
    let mut denied = record("tools/call");
    denied.outcome = Outcome::Denied {
        reason: "policy-denied",
    };
    log.log(denied);
    let mut failed = record("prompts/get");
    failed.outcome = Outcome::Error { code: -32602 };
    log.log(failed);
    let mut gone = record("tools/call");
    gone.outcome = Outcome::BridgeError {
        reason: "child-gone".into(),
    };
    log.log(gone);
    log.flush().await;
    let lines = out.lines();
    assert_eq!(lines.len(), 4);
    let first = lines[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected = crate::policy::audit_line::RECORD_FIELDS.to_vec();
    expected.sort();
    assert_eq!(keys, expected);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["durationMs"], 1.5);
    assert_eq!(first["peerUid"], 1000);
    assert_eq!(first["peerPid"], Value::Null);
    assert_eq!(first["outcome"], "ok");
    assert_eq!(
        (lines[1]["outcome"].clone(), lines[1]["reason"].clone()),
        (json!("denied"), json!("policy-denied"))
    );
    assert_eq!(
        (lines[2]["outcome"].clone(), lines[2]["code"].clone()),
        (json!("error"), json!(-32602))
    );
    assert_eq!(
        (lines[3]["outcome"].clone(), lines[3]["reason"].clone()),
        (json!("bridge-error"), json!("child-gone"))
    );
    log.close().await;
}

#[tokio::test]
async fn an_outcome_left_to_the_writer_is_read_from_the_answer() {
    let out = Capture::default();
    let log = AuditLog::with_writer(&config(json!({"file": "stderr"})), Box::new(out.clone()));
    let small =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#);
    let deferred = Outcome::deferred(&small);
    assert!(matches!(deferred, Outcome::Answer(_)), "{deferred:?}");
    let mut failed = record("tools/call");
    failed.outcome = deferred;
    log.log(failed);
    // A large answer is read at once: a full queue must not hold large answers.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":2,"result":{{"text":"{}"}}}}"#,
        "x".repeat(Outcome::DEFERRED_MAX)
    );
    assert_eq!(Outcome::deferred(&Bytes::from(big)), Outcome::Ok);
    let mut garbled = record("tools/call");
    garbled.outcome = Outcome::deferred(&Bytes::from_static(b"{not json"));
    log.log(garbled);
    log.flush().await;
    let lines = out.lines();
    assert_eq!(
        (lines[0]["outcome"].clone(), lines[0]["code"].clone()),
        (json!("error"), json!(-32601))
    );
    assert_eq!(
        (lines[1]["outcome"].clone(), lines[1]["reason"].clone()),
        (json!("bridge-error"), json!("unreadable-answer"))
    );
    log.close().await;
}

#[tokio::test]
async fn arguments_when_asked_for_are_redacted() {
    let out = Capture::default();
    let cfg = config(json!({"file": "stderr", "arguments": true, "redact": ["ApiKey"]}));
    let log = AuditLog::with_writer(&cfg, Box::new(out.clone()));
    assert!(log.wants_arguments());
    let mut r = record("tools/call");
    r.request = Some(Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"login","arguments":{"user":"u","Password":"hunter2","opts":[{"apikey":"k"}]}}}"#,
    ));
    r.answer = Some(Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":1,"result":{"token":"t","ok":true}}"#,
    ));
    log.log(r);
    log.flush().await;
    let line = &out.lines()[0];
    assert_eq!(
        line["arguments"],
        json!({"user": "u", "Password": "[redacted]", "opts": [{"apikey": "[redacted]"}]})
    );
    assert_eq!(line["result"], json!({"token": "[redacted]", "ok": true}));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("hunter2"));
    log.close().await;
}

#[tokio::test]
async fn a_full_queue_never_stalls_the_caller_and_the_drops_are_told() {
    let out = Capture::default();
    let (entered_tx, entered) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel();
    let stuck = Stuck {
        entered: Some(entered_tx),
        release: release_rx,
        inner: out.clone(),
    };
    let log = AuditLog::with_writer(
        &config(json!({"file": "stderr", "queue": 8})),
        Box::new(stuck),
    );
    log.log(record("first"));
    // The writer now holds the first record and hangs in its write.
    tokio::task::spawn_blocking(move || entered.recv_timeout(WAIT))
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    for _ in 0..10_000 {
        log.log(record("tools/call"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "logging waited: {:?}",
        started.elapsed()
    );
    assert_eq!(log.dropped(), 10_000 - 8);
    release.send(()).unwrap();
    tokio::time::timeout(WAIT, log.flush()).await.unwrap();
    let lines = out.lines();
    assert_eq!(lines.len(), 1 + 8 + 1);
    let told = lines
        .iter()
        .find(|l| l["event"] == "audit-dropped")
        .unwrap();
    assert_eq!(told["dropped"], 10_000 - 8);
    // Once told, not told again.
    log.log(record("later"));
    log.flush().await;
    assert_eq!(
        out.lines()
            .iter()
            .filter(|l| l["event"] == "audit-dropped")
            .count(),
        1
    );
    log.close().await;
}

#[tokio::test]
async fn reopen_after_a_rename_writes_to_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cfg = config(json!({"file": path.to_str().unwrap()}));
    let log = AuditLog::start(&cfg).unwrap();
    log.log(record("before"));
    log.flush().await;
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log.log(record("after"));
    log.flush().await;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    assert!(read(&rotated).contains(r#""method":"before""#));
    assert!(!read(&rotated).contains(r#""method":"after""#));
    assert!(read(&path).contains(r#""method":"after""#));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    log.close().await;
}

#[test]
fn a_file_that_cannot_be_opened_is_named() {
    let cfg = config(json!({"file": "/nonexistent-dir/audit.jsonl"}));
    let err = AuditLog::start(&cfg).err().unwrap();
    assert!(err.to_string().contains("/nonexistent-dir/audit.jsonl"));
}

#[test]
fn settings_are_checked() {
    let c = config(json!({"file": "stderr"}));
    assert_eq!(
        (c.sink.clone(), c.arguments, c.queue),
        (Sink::Stderr, false, 4096)
    );
    assert!(c.redact.contains(&"password".to_owned()));
    let c = config(json!({"file": "/var/log/a.jsonl", "redact": ["X-Api-Key"]}));
    assert!(c.redact.contains(&"x-api-key".to_owned()) && c.redact.contains(&"token".to_owned()));
    let bad = |v: Value| AuditConfig::parse(&v, "mcpBridge.audit").unwrap_err();
    assert_eq!(bad(json!({})).path, "mcpBridge.audit");
    assert_eq!(
        bad(json!({"file": "rel/a.log"})).path,
        "mcpBridge.audit.file"
    );
    assert_eq!(
        bad(json!({"file": "stderr", "queue": 0})).path,
        "mcpBridge.audit.queue"
    );
    assert_eq!(
        bad(json!({"file": "stderr", "redact": [1]})).path,
        "mcpBridge.audit.redact[0]"
    );
    assert_eq!(
        bad(json!({"file": "stderr", "arguments": "yes"})).path,
        "mcpBridge.audit.arguments"
    );
    assert_eq!(
        bad(json!({"file": "stderr", "argument": true})).path,
        "mcpBridge.audit.argument"
    );
}

#[test]
fn known_methods_are_kept_without_a_copy_and_others_as_sent() {
    use std::borrow::Cow;
    assert!(matches!(
        super::method_name("tools/call"),
        Cow::Borrowed("tools/call")
    ));
    assert!(matches!(
        super::method_name("resources/templates/list"),
        Cow::Borrowed(_)
    ));
    let odd = super::method_name("vendor/x\u{1}");
    assert!(matches!(odd, Cow::Owned(_)));
    assert_eq!(odd, "vendor/x\u{1}");
}

#[test]
fn names_short_and_long_read_back_whole() {
    let at_limit = "é".repeat(Name::INLINE / 2);
    let over = "é".repeat(Name::INLINE / 2 + 1);
    let long = format!("file:///{}", "x".repeat(10_000));
    for s in ["", "echo", at_limit.as_str(), over.as_str(), long.as_str()] {
        let name = Name::from(s);
        assert_eq!(&*name, s);
        assert_eq!(&*name.clone(), s);
        assert_eq!(format!("{name:?}"), format!("{s:?}"));
    }
    assert!(matches!(Name::from(at_limit.as_str()), Name::Inline(..)));
    assert!(matches!(Name::from(over.as_str()), Name::Heap(_)));
}
