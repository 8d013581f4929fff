//! `segmentd bench import`: writes a seeded CSV of `--rows` contacts (1 in 200 rows with
//! a bad value, to be rejected) to a file, uploads it through `POST /api/v1/imports`
//! (streamed from the file over a plain HTTP/1.1 connection, so the client never holds
//! it), starts it and polls its progress until done; prints the upload and import times,
//! rows/s and the process's peak resident memory (server and client share it). Then it
//! posts `--events` e-mail opens spread over the last 120 days and times a segment's
//! 90-day growth chart, computed from the data (cold) and from the cache (warm).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::send_batches;
use crate::auth::issue_api_key;
use crate::settings::Settings;
use crate::startup::Application;

pub struct ImportBench {
    pub rows: usize,
    pub events: usize,
}

const CITIES: [&str; 8] = [
    "Warsaw", "Kraków", "Łódź", "Wrocław", "Poznań", "Gdańsk", "Berlin", "Lisbon",
];

/// Writes the seeded file; its size in bytes.
fn write_csv(path: &Path, rows: usize) -> std::io::Result<u64> {
    let mut rng = StdRng::seed_from_u64(15);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "external_id,email,phone,age,city,vip,signed_up")?;
    for i in 0..rows {
        let age = if i % 200 == 199 {
            "unknown".to_owned()
        } else {
            rng.random_range(16..90).to_string()
        };
        let city = CITIES[rng.random_range(0..CITIES.len())];
        let vip = rng.random_bool(0.1);
        let day = rng.random_range(1..=28);
        let month = rng.random_range(1..=12);
        writeln!(
            out,
            "c{i:07},person{i}@example.com,+48 600 {:03} {:03},{age},{city},{vip},20{:02}-{month:02}-{day:02}",
            i / 1000 % 1000,
            i % 1000,
            rng.random_range(10..26)
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// `VmHWM` (peak resident memory) of this process, in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

/// POSTs the file as the body of `path` on `port`, copied from disk to the socket; the
/// response's JSON.
async fn post_file(port: u16, path: &str, key: &str, file: &Path) -> anyhow::Result<Value> {
    let size = tokio::fs::metadata(file).await?.len();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut f = tokio::fs::File::open(file).await?;
    tokio::io::copy(&mut f, &mut stream).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (status_line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    anyhow::ensure!(
        status_line.contains(" 201 "),
        "upload refused: {status_line}"
    );
    let body = rest.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked body would carry sizes; axum sends JSON with a length.
    Ok(serde_json::from_str(body.trim())?)
}

pub async fn run_import(settings: &Settings, bench: &ImportBench) -> anyhow::Result<()> {
    let dir: PathBuf = settings.data_dir.join("bench-import");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("contacts-{}.csv", bench.rows));
    let t = Instant::now();
    let bytes = write_csv(&file, bench.rows)?;
    println!(
        "generated {} rows ({:.1} MB) in {:.1} s: {}",
        bench.rows,
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        file.display()
    );

    let app = Application::build(settings).await?;
    let store = app.state().store.clone();
    let port = app.port();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    tokio::spawn(app.run_until_stopped());
    let stamp = jiff::Timestamp::now().as_millisecond();
    let account = store
        .create_account(&format!("bench-import-{stamp}"), "UTC")
        .await?;
    let key = issue_api_key(store.as_ref(), account.id).await?;
    let client = reqwest::Client::new();
    // Segments on the imported fields, so that the import pays for membership upkeep.
    let rules = [
        json!({"field": "age", "op": "greater_or_equal", "value": 60}),
        json!({"field": "city", "op": "in", "value": ["Warsaw", "Kraków"]}),
        json!({"all": [{"field": "vip", "op": "is_true"}, {"field": "email", "op": "has_value"}]}),
    ];
    for (k, t) in [
        ("age", "number"),
        ("city", "text"),
        ("vip", "boolean"),
        ("signed_up", "date"),
    ] {
        client
            .post(format!("{base}/fields"))
            .bearer_auth(&key)
            .json(&json!({"key": k, "type": t}))
            .send()
            .await?
            .error_for_status()?;
    }
    for (i, rule) in rules.iter().enumerate() {
        client
            .post(format!("{base}/segments"))
            .bearer_auth(&key)
            .json(&json!({"name": format!("import {i}"), "rule": rule}))
            .send()
            .await?
            .error_for_status()?;
    }
    let rss_before = super::rss_bytes().unwrap_or(0);

    let started = Instant::now();
    let uploaded = post_file(port, "/api/v1/imports?file_name=bench.csv", &key, &file).await?;
    let upload_time = started.elapsed();
    let id = uploaded["id"].as_i64().unwrap_or_default();
    let run_started = Instant::now();
    client
        .post(format!("{base}/imports/{id}/start"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?;
    let done: Value = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now: Value = client
            .get(format!("{base}/imports/{id}"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if now["status"] != "running" {
            break now;
        }
    };
    let run_time = run_started.elapsed();
    let total = started.elapsed();
    anyhow::ensure!(done["status"] == "done", "the import ended {done}");
    let imported = done["rows_imported"].as_u64().unwrap_or(0);
    let rejected = done["rows_rejected"].as_u64().unwrap_or(0);
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("| what | value |");
    println!("| --- | ---: |");
    println!("| backend | {} |", store.backend());
    println!("| rows in the file | {} |", bench.rows);
    println!("| file size | {:.1} MB |", bytes as f64 / 1e6);
    println!(
        "| upload (streamed to disk) | {:.2} s |",
        upload_time.as_secs_f64()
    );
    println!(
        "| import (start to done) | {:.2} s |",
        run_time.as_secs_f64()
    );
    println!("| total | {:.2} s |", total.as_secs_f64());
    println!("| rows imported / rejected | {imported} / {rejected} |");
    println!(
        "| rows/s (total) | {:.0} |",
        bench.rows as f64 / total.as_secs_f64().max(1e-9)
    );
    println!("| RSS before upload | {:.0} MiB |", mb(rss_before));
    println!(
        "| RSS after import | {:.0} MiB |",
        mb(super::rss_bytes().unwrap_or(0))
    );
    println!(
        "| peak RSS (VmHWM) | {:.0} MiB |",
        mb(peak_rss_bytes().unwrap_or(0))
    );
    let _ = std::fs::remove_file(&file);

    if bench.events == 0 {
        return Ok(());
    }
    // The growth chart of a new segment over data spanning 120 days.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let contacts = bench.rows.max(1);
    let batch = 10_000;
    let batches = bench.events.div_ceil(batch);
    let total_events = bench.events;
    let body: super::BatchBody = std::sync::Arc::new(move |k| {
        let mut rng = StdRng::seed_from_u64(k as u64);
        let items: Vec<Value> = (k * batch..((k + 1) * batch).min(total_events))
            .map(|_| {
                // Rows ending in 199 were rejected: skip them as contacts.
                let mut c = rng.random_range(0..contacts);
                if c % 200 == 199 {
                    c -= 1;
                }
                let ago = rng.random_range(0..120 * 86_400_000i64);
                let ts = jiff::Timestamp::from_millisecond(now_ms - ago)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                json!({"type": "system", "contact": format!("c{c:07}"), "event": "MailOpen", "timestamp": ts})
            })
            .collect();
        serde_json::to_vec(&json!({ "events": items })).unwrap_or_default()
    });
    let events_time =
        send_batches(&client, &format!("{base}/events"), &key, batches, 2, body).await?;
    println!(
        "posted {} events over 120 days in {:.1} s",
        bench.events,
        events_time.as_secs_f64()
    );
    let saved: Value = client
        .post(format!("{base}/segments"))
        .bearer_auth(&key)
        .json(&json!({"name": "opened in 30 days", "rule":
            {"all": [{"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}},
                     {"field": "age", "op": "less_than", "value": 60}]}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let seg = saved["id"].as_i64().unwrap_or_default();
    for label in ["cold (each day evaluated)", "warm (cached)"] {
        let t = Instant::now();
        let h: Value = client
            .get(format!("{base}/segments/{seg}/history?days=90"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let computed = h["items"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["computed"] == true).count());
        println!(
            "90-day history of a new segment, {label}: {:.0} ms ({computed} computed days)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}
