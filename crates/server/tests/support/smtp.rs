//! A tiny SMTP server for the tests of both binaries (`api` and `panel`): it keeps every
//! message it accepts and can misbehave as `Rules` say. Included by path, so each binary
//! uses only part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as the SMTP sink received it: envelope recipients and the raw data, with
/// quoted-printable soft breaks and `=3D` undone.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The name the client gave in EHLO.
    pub hello: String,
    pub to: Vec<String>,
    pub data: String,
}

pub type Inbox = Arc<Mutex<Vec<Mail>>>;

/// How the test's SMTP server misbehaves.
#[derive(Clone, Default)]
pub struct Rules {
    /// RCPT TO one of these is answered `550 5.1.1` (no such user).
    pub unknown_users: Vec<String>,
    /// Until then every MAIL FROM is answered `451 4.7.1` (a rate limit, greylisting).
    pub throttle_until: Option<std::time::Instant>,
    /// A message to one of these is kept, but the connection closes before the reply:
    /// delivered, yet the sender cannot know.
    pub lose_reply_for: Vec<String>,
}

/// A minimal SMTP server: accepts every message and keeps it.
pub async fn smtp_sink() -> (u16, Inbox) {
    smtp_server(Rules::default()).await
}

/// A minimal SMTP server that keeps every message it accepts, misbehaving by `rules`.
pub async fn smtp_server(rules: Rules) -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox: Inbox = Arc::default();
    let kept = inbox.clone();
    let rules = Arc::new(rules);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (kept, rules) = (kept.clone(), rules.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let (mut to, mut hello) = (Vec::new(), String::new());
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        hello = line[4..].trim().to_owned();
                        b"250 sink\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        match rules.throttle_until {
                            Some(t) if std::time::Instant::now() < t => {
                                b"451 4.7.1 Too many messages, slow down\r\n"
                            }
                            _ => b"250 OK\r\n",
                        }
                    } else if upper.starts_with("RCPT TO:") {
                        let address = line[8..].trim().trim_matches(['<', '>']).to_owned();
                        if rules.unknown_users.contains(&address) {
                            b"550 5.1.1 No such user here\r\n"
                        } else {
                            to.push(address);
                            b"250 OK\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go on\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            // Undo SMTP dot-stuffing.
                            data.push_str(l.strip_prefix('.').unwrap_or(&l));
                            data.push('\n');
                        }
                        let data = data.replace("=\n", "").replace("=3D", "=");
                        let lose = to.iter().any(|t| rules.lose_reply_for.contains(t));
                        kept.lock().unwrap().push(Mail {
                            hello: hello.clone(),
                            to: std::mem::take(&mut to),
                            data,
                        });
                        if lose {
                            return;
                        }
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, inbox)
}

/// The first tracking link of `kind` (`o`, `c`, `u`) in a text.
pub fn link(text: &str, kind: &str) -> String {
    let start = text
        .find(&format!("/t/{kind}/"))
        .unwrap_or_else(|| panic!("no /t/{kind}/ link in {text}"));
    let begin = text[..start].rfind("http://").unwrap();
    let end = text[start..]
        .find(['"', ' ', '\n', '<', '>', '\r'])
        .map(|e| start + e)
        .unwrap_or(text.len());
    text[begin..end].to_owned()
}
