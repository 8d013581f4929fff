//! The binary itself: `demo`, `account create`, configuration from a file, and the
//! benchmarks at tiny sizes.

use std::process::Command;

use serde_json::Value;

fn segmentd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_segmentd"))
}

fn key_from(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("API key: "))
        .expect("an API key line")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_demo_creates_an_account_with_data_and_segments_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = || {
        segmentd()
            .args(["demo", "--no-serve", "--contacts", "300", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("demo account \"Demo\" created"), "{stdout}");
    let key = key_from(&stdout);
    let written = std::fs::read_to_string(data.join("demo-api-key.txt")).unwrap();
    assert_eq!(written.trim(), key);

    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("demo account \"Demo\" found"));

    // The data is there: six segments, most of them with members.
    let store = segmentd_store::open(&format!("sqlite://{}", data.join("segmentd.db").display()))
        .await
        .unwrap();
    let account = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "Demo")
        .unwrap();
    assert_eq!(store.all_contacts(account.id).await.unwrap().len(), 300);
    assert!(store.all_events(account.id).await.unwrap().len() > 1_000);
    let segments = store.segments(account.id, None).await.unwrap();
    assert_eq!(segments.len(), 6);
    let app =
        segmentd::startup::Application::with_store(store.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let counts = app
        .state()
        .index
        .counts(
            &account,
            &segments.iter().map(|s| s.id).collect::<Vec<_>>(),
            None,
        )
        .await
        .unwrap();
    assert!(counts.iter().filter(|&&n| n > 0).count() >= 5, "{counts:?}");
}

#[test]
fn account_create_prints_a_working_key_and_refuses_a_bad_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let out = segmentd()
        .args([
            "account",
            "create",
            "--name",
            "Acme",
            "--timezone",
            "Mars/Olympus",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone"));

    let out = segmentd()
        .args([
            "account",
            "create",
            "--name",
            "Acme",
            "--timezone",
            "Europe/Warsaw",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = key_from(&String::from_utf8_lossy(&out.stdout));
    assert!(key.starts_with("sk_") && key.len() == 67, "{key}");
}

#[tokio::test]
async fn serve_reads_its_settings_from_a_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("segmentd.toml");
    let from_file = dir.path().join("from-file");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"{}\"\n",
            from_file.display()
        ),
    )
    .unwrap();
    // The flag overrides the file's listen address; the data directory comes from the file.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut child = segmentd()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("SEGMENTD_DATA_DIR")
        .env_remove("SEGMENTD_LISTEN")
        .env_remove("SEGMENTD_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the line that says it listens (no sleeping: read the pipe).
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().next()
    })
    .await
    .unwrap();
    let result = async {
        let line = line.unwrap().unwrap();
        assert!(line.contains(&port.to_string()), "{line}");
        let r = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/openapi.json"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["info"]["title"], "segmentd");
        assert!(from_file.join("segmentd.db").exists());
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The ingest benchmark end to end on a small load: every batch acknowledged, and each
/// latency probe's event seen as one fewer member (the bench fails otherwise).
#[test]
fn bench_ingest_loads_through_the_api_and_its_probes_see_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let out = segmentd()
        .args(["bench", "ingest", "--contacts", "500", "--events", "3000"])
        .args(["--batch", "700", "--clients", "3", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| sqlite | contacts | 500 |"), "{stdout}");
    assert!(stdout.contains("| sqlite | events | 3000 |"), "{stdout}");
    assert!(
        stdout
            .contains("event -> membership change visible through the API (200 single-event posts"),
        "{stdout}"
    );
}

/// The paths benchmark end to end at a tiny size on SQLite: every path answered (the
/// bench fails on any error answer) and printed with its figure beside its target.
#[test]
fn bench_paths_times_every_path_and_prints_each_beside_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = segmentd()
        .args([
            "bench",
            "paths",
            "--contacts",
            "2000",
            "--events-per-contact",
            "3",
        ])
        .args(["--samples", "3", "--mixed-seconds", "1", "--batch", "700"])
        .args(["--clients", "2", "--data-dir"])
        .arg(dir.path())
        .env_remove("SEGMENTD_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("## segmentd bench paths: sqlite, 2,000 contacts × 3 events"),
        "{stdout}"
    );
    let lines = [
        "| contacts (POST /api/v1/contacts) | ",
        "| events, durable ingest (POST /api/v1/events) | ",
        "| builder open (GET /panel/segments/new",
        "| live count with reach: five-condition mix (POST /panel/api/preview) | 3 | ",
        "| live count with reach: visit count in window ",
        "| live count with reach: not_occurred ",
        "| live count with reach: fields only ",
        "| live count with reach: three-level nested ",
        "| segment list (GET /panel/segments) | 3 | ",
        "| segment list (GET /api/v1/segments) | 3 | ",
        "| segment page (GET /panel/segments/{id}) | 3 | ",
        "| segment page's growth chart ",
        "| members page (GET /panel/segments/{id}/members) | 3 | ",
        "| members page (GET /api/v1/segments/{id}/members?limit=100) | 3 | ",
        "| contact search from the start of an e-mail address ",
        "| contact search from the start of an external id ",
        "| contact search from the start of a text field's value ",
        "| explain, contact by external id ",
        "| explain, contact by e-mail ",
        "| campaign audience preview (",
        "| five-condition mix | ",
        "| visit count in window | ",
        "| not_occurred | ",
        "| fields only | ",
        "| three-level nested | ",
        "| freeze of the largest audience (",
        "| restart to first answer ",
        "| snapshot save when stopping ",
        "| server RSS before the load | ",
        "| server RSS after the load | ",
        "| server RSS per contact ",
        "| of which the index's heap per contact ",
        "| mixed load: reads median / p99 ",
        "| mixed load: saved count ",
        "| mixed load: members page ",
        "| mixed load: preview ",
        "| mixed load: events ingested meanwhile ",
    ];
    for line in lines {
        let found: Vec<&str> = stdout.lines().filter(|l| l.starts_with(line)).collect();
        assert_eq!(found.len(), 1, "one line starting {line:?}\n{stdout}");
        // Each line has its figure and then its target and verdict (or none: "—").
        let cells: Vec<&str> = found[0].split(" | ").collect();
        assert!(cells.len() >= 4, "{line:?}: {}", found[0]);
        assert!(
            found[0].ends_with(" | yes |")
                || found[0].contains("**no**")
                || found[0].ends_with(" | — | — |"),
            "{}",
            found[0]
        );
    }
}

/// The send benchmark end to end on a small audience: an e-mail campaign through the API
/// to the bench's own SMTP sink, every message accepted there (the bench fails
/// otherwise), and the rate printed.
#[test]
fn bench_send_delivers_one_message_per_contact_to_the_sink_and_prints_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = segmentd()
        .args(["bench", "send", "--contacts", "200", "--data-dir"])
        .arg(dir.path())
        .env_remove("SEGMENTD_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("## segmentd bench send: sqlite, 200 contacts"),
        "{stdout}"
    );
    for line in [
        "| messages/s (sink count / send call -> the sink has every message) | ",
        "| sink: messages accepted | 200 | ",
        "| campaign status (GET /api/v1/campaigns/{id}) | sent | ",
        "| recipients by status (GET /api/v1/campaigns/{id}/recipients) | sent 200 | ",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "{line:?}\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l == "OK: the sink received exactly 200 messages, one per contact"),
        "{stdout}"
    );
}

/// Starts `segmentd serve` on a free port over `dir`, delivering to the SMTP server at
/// `smtp_port`; returns the child and its address once it listens.
async fn serve(dir: &std::path::Path, smtp_port: u16) -> (std::process::Child, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut child = segmentd()
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &smtp_port.to_string(),
        ])
        .args(["--campaign-concurrency", "4"])
        .env_remove("SEGMENTD_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().next()
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    (child, format!("http://127.0.0.1:{port}/api/v1"))
}

/// kill -9 in the middle of a send, then a restart: nobody gets the message twice,
/// everyone the server acknowledged is `sent`, and the few in flight at the kill are
/// `unknown` (at most one batch), never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_send_then_a_restart_mails_nobody_twice() {
    const CONTACTS: usize = 1_500;
    let (smtp_port, inbox) = crate::campaigns::smtp_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let out = segmentd()
        .args([
            "account",
            "create",
            "--name",
            "Shop",
            "--timezone",
            "UTC",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let key = key_from(&String::from_utf8_lossy(&out.stdout));
    let (mut child, api) = serve(dir.path(), smtp_port).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{api}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let contacts: Vec<Value> = (0..CONTACTS)
        .map(|i| serde_json::json!({"external_id": format!("c{i:05}"), "email": format!("c{i:05}@example.com")}))
        .collect();
    assert!(
        post("/contacts", serde_json::json!({"contacts": contacts}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let segment: Value = post(
        "/segments",
        serde_json::json!({"name": "All", "rule": {"field": "email", "op": "has_value"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let campaign: Value = post(
        "/campaigns",
        serde_json::json!({"name": "Sale", "channel": "email", "targets": [segment["id"]],
            "content": {"from": "shop@example.com", "subject": "Sale", "text": "Hi {{email}}"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = campaign["id"].as_i64().unwrap();
    post(&format!("/campaigns/{id}/send"), serde_json::json!({}))
        .await
        .unwrap();
    // Kill it once a fraction has gone out.
    for _ in 0..2_000 {
        if inbox.lock().unwrap().len() >= CONTACTS / 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = inbox.lock().unwrap().len();
    assert!(
        at_kill < CONTACTS,
        "the kill came too late to test anything"
    );

    let (mut child, api) = serve(dir.path(), smtp_port).await;
    let get = |path: String| client.get(format!("{api}{path}")).bearer_auth(&key).send();
    let mut status = String::new();
    for _ in 0..1_000 {
        let c: Value = get(format!("/campaigns/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = c["status"].as_str().unwrap().to_owned();
        if status == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stats: Value = get(format!("/campaigns/{id}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, "sent");

    let mut received: std::collections::HashMap<String, usize> = Default::default();
    for m in inbox.lock().unwrap().iter() {
        *received.entry(m.to[0].clone()).or_default() += 1;
    }
    eprintln!("received {at_kill} before the kill; after the restart: {stats}");
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "mailed twice: {twice:?}");
    let (sent, unknown) = (
        stats["sent"].as_u64().unwrap(),
        stats["unknown"].as_u64().unwrap(),
    );
    assert_eq!(sent + unknown, CONTACTS as u64, "{stats}");
    assert!(unknown <= 32, "at most one batch in flight: {stats}");
    // Every recipient the server acknowledged is among those received.
    assert!(received.len() as u64 >= sent, "{stats}");
}

#[test]
fn keys_are_created_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = segmentd()
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, _) = run(&["account", "create", "--name", "Shop", "--timezone", "UTC"]);
    assert!(ok);
    let (ok, out) = run(&["key", "create", "--account", "Shop", "--name", "backend"]);
    assert!(ok, "{out}");
    let key = key_from(&out);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (_, list) = run(&["key", "list", "--account", "Shop"]);
    assert!(
        list.contains("backend") && list.contains(&key[..10]),
        "{list}"
    );
    assert!(!list.contains(&key), "never the key itself: {list}");
    let (ok, _) = run(&["key", "revoke", "--account", "Shop", "--id", &id]);
    assert!(ok);
    let (_, list) = run(&["key", "list", "--account", "Shop"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{list}"
    );
    let (ok, _) = run(&["key", "revoke", "--account", "Shop", "--id", &id]);
    assert!(!ok, "revoking twice fails");
}
