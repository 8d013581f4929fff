//! The binary itself: `demo`, `account create`, and configuration from a file.

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
