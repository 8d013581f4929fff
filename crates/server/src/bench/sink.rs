//! A fast SMTP sink for `bench send`: accepts every message at once and keeps only two
//! counters, messages accepted and connections opened, so that it costs the bench as
//! little as a local relay that hands mail on would.
//!
//! It speaks just enough ESMTP for a client such as lettre: a 220 greeting, a multi-line
//! 250 to EHLO (PIPELINING, 8BITMIME, SMTPUTF8), 250 to MAIL, RCPT, RSET and NOOP, 354 to
//! DATA and `250 queued` once the line `.` ends the message, 221 to QUIT. Any number of
//! connections at once, each carrying any number of messages.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const GREETING: &[u8] = b"220 sink.segmentd.local ESMTP bench sink\r\n";
const EHLO: &[u8] =
    b"250-sink.segmentd.local\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
const HELO: &[u8] = b"250 sink.segmentd.local\r\n";
const OK: &[u8] = b"250 OK\r\n";
const GO_ON: &[u8] = b"354 end data with <CR><LF>.<CR><LF>\r\n";
const QUEUED: &[u8] = b"250 queued\r\n";
const BYE: &[u8] = b"221 bye\r\n";
const UNKNOWN: &[u8] = b"502 command not implemented\r\n";

/// How long a connection that was answered 221 may take to close its end: the client
/// closes first, so that the TIME_WAIT sockets of many short connections are the
/// client's, which Linux reuses for new connections on loopback.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The accept loop's pause after an error (out of file descriptors, say), so that it
/// does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Counts {
    messages: AtomicU64,
    connections: AtomicU64,
}

/// The sink, listening on a free loopback port until dropped.
pub struct Sink {
    port: u16,
    counts: Arc<Counts>,
    accept: JoinHandle<()>,
}

impl Sink {
    /// Listens on `127.0.0.1:0` and serves each connection on a task of the current
    /// runtime.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let accept = tokio::spawn(accept_loop(listener, counts.clone()));
        Ok(Sink {
            port,
            counts,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages accepted so far (each answered `250 queued`).
    pub fn messages(&self) -> u64 {
        self.counts.messages.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, counts: Arc<Counts>) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                counts.connections.fetch_add(1, Ordering::Relaxed);
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(socket, &counts).await {
                        tracing::debug!(error = %e, "bench sink: a connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "bench sink: accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// What to do with one command line.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Send(&'static [u8]),
    /// 354, then the message up to the line `.`, then `250 queued`.
    Data,
    Quit,
}

/// The reply to one command line (its verb in any case; the rest is not looked at).
fn reply(line: &[u8]) -> Reply {
    let verb = line.get(..4).unwrap_or(line).to_ascii_uppercase();
    match &verb[..] {
        b"EHLO" => Reply::Send(EHLO),
        b"HELO" => Reply::Send(HELO),
        b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => Reply::Send(OK),
        b"DATA" => Reply::Data,
        b"QUIT" => Reply::Quit,
        _ => Reply::Send(UNKNOWN),
    }
}

/// Whether a line of message data is the `.` that ends it.
fn ends_data(line: &[u8]) -> bool {
    matches!(line, b".\r\n" | b".\n")
}

/// One connection. Replies are gathered in `out` and written when there is no more
/// input already read (a pipelined group of commands gets its replies in one write, and
/// no reply waits for input that will not come before it is sent).
async fn session(socket: TcpStream, counts: &Counts) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let (read, mut write) = socket.into_split();
    let mut input = BufReader::with_capacity(64 * 1024, read);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    out.extend_from_slice(GREETING);
    loop {
        if input.buffer().is_empty() && !out.is_empty() {
            write.write_all(&out).await?;
            out.clear();
        }
        line.clear();
        if input.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        match reply(&line) {
            Reply::Send(bytes) => out.extend_from_slice(bytes),
            Reply::Data => {
                // The client waits for 354 before it sends the message.
                out.extend_from_slice(GO_ON);
                write.write_all(&out).await?;
                out.clear();
                loop {
                    line.clear();
                    if input.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if ends_data(&line) {
                        break;
                    }
                }
                counts.messages.fetch_add(1, Ordering::Relaxed);
                out.extend_from_slice(QUEUED);
            }
            Reply::Quit => {
                out.extend_from_slice(BYE);
                write.write_all(&out).await?;
                // Let the client close first (see `CLOSE_WAIT`).
                let mut rest = [0u8; 256];
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while input.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                })
                .await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn commands_get_their_replies_whatever_their_case() {
        let cases: [(&[u8], Reply); 10] = [
            (b"EHLO client.example\r\n", Reply::Send(EHLO)),
            (b"ehlo client.example\r\n", Reply::Send(EHLO)),
            (b"HELO client.example\r\n", Reply::Send(HELO)),
            (
                b"MAIL FROM:<a@example.com> BODY=8BITMIME\r\n",
                Reply::Send(OK),
            ),
            (b"RCPT TO:<b@example.com>\r\n", Reply::Send(OK)),
            (b"RSET\r\n", Reply::Send(OK)),
            (b"NOOP\r\n", Reply::Send(OK)),
            (b"DATA\r\n", Reply::Data),
            (b"quit\r\n", Reply::Quit),
            (b"STARTTLS\r\n", Reply::Send(UNKNOWN)),
        ];
        for (line, want) in cases {
            assert_eq!(reply(line), want, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(reply(b"\r\n"), Reply::Send(UNKNOWN));
        assert!(ends_data(b".\r\n") && ends_data(b".\n"));
        assert!(!ends_data(b"..\r\n") && !ends_data(b". \r\n"));
    }

    /// Two messages on one connection, the second one's commands pipelined, and a
    /// second connection: every reply comes, and both counters count.
    #[tokio::test]
    async fn messages_on_reused_and_pipelined_connections_are_counted() {
        let sink = Sink::start().await.unwrap();
        let socket = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut expect = async |want: &str| {
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(line.starts_with(want), "{line:?}, expected {want:?}");
        };
        expect("220 ").await;
        write.write_all(b"EHLO me\r\n").await.unwrap();
        for want in ["250-", "250-PIPELINING", "250-8BITMIME", "250 SMTPUTF8"] {
            expect(want).await;
        }
        write
            .write_all(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
            .await
            .unwrap();
        for want in ["250 ", "250 ", "354 "] {
            expect(want).await;
        }
        write
            .write_all(b"Subject: one\r\n\r\n..dot-stuffed\r\n.\r\n")
            .await
            .unwrap();
        expect("250 queued").await;
        // The second message's commands and data in one write.
        write
            .write_all(b"RSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n")
            .await
            .unwrap();
        for want in ["250 ", "250 ", "250 ", "354 "] {
            expect(want).await;
        }
        write
            .write_all(b"two\r\n.\r\nNOOP\r\nQUIT\r\n")
            .await
            .unwrap();
        for want in ["250 queued", "250 ", "221 "] {
            expect(want).await;
        }
        drop(write);
        assert_eq!(sink.messages(), 2);

        let other = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap();
        let mut other = BufReader::new(other);
        let mut greeting = String::new();
        other.read_line(&mut greeting).await.unwrap();
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert_eq!(sink.connections(), 2);
    }
}
