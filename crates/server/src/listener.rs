//! The listening socket, guarded: at most [`MAX_CONNECTIONS`] connections at once; a
//! connection idle for [`IDLE_TIMEOUT`] between requests is closed, and so is one whose
//! request head (line and headers) is not complete [`IDLE_TIMEOUT`] after its first
//! byte, however slowly it trickles in. Without these, about a thousand idle or
//! half-sent connections used up a default limit of 1,024 open files and shut every
//! other client out. A request being handled (its head complete, no answer written yet)
//! is never timed out here: the router's request timeout bounds it.
//!
//! axum's server sets no timer, so hyper's own header-read timeout does not apply; the
//! stream keeps the three states itself, watching for the blank line that ends a head.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections served at once; the next ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 768;
/// A connection that sends no byte for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct GuardedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener) -> Self {
        Self::with_limits(inner, MAX_CONNECTIONS, IDLE_TIMEOUT)
    }

    pub fn with_limits(inner: TcpListener, max: usize, idle: Duration) -> Self {
        GuardedListener {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Wait for a free slot before taking a connection off the backlog.
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        GuardedStream {
                            inner: stream,
                            idle: self.idle,
                            deadline: Box::pin(tokio::time::sleep(self.idle)),
                            phase: Phase::Idle,
                            tail: [0; 3],
                            _permit: permit,
                        },
                        addr,
                    );
                }
                // Out of files or a connection reset before accept: wait a little, as
                // axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing unanswered: the deadline is the idle end.
    Idle,
    /// A request head is arriving: the deadline is its first byte + the timeout.
    Head,
    /// The head is complete and no answer written yet: being handled, no deadline.
    Busy,
}

/// A connection holding its slot; a read fails with `TimedOut` when its phase's deadline
/// has passed, which makes the server close the connection.
pub struct GuardedStream {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    phase: Phase,
    /// The last three bytes read, to find a `\r\n\r\n` split across reads.
    tail: [u8; 3],
    _permit: OwnedSemaphorePermit,
}

impl GuardedStream {
    /// Follows the phase through bytes just read.
    fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            let end = Instant::now() + self.idle;
            self.deadline.as_mut().reset(end);
        }
        if self.phase == Phase::Head {
            let mut window = Vec::with_capacity(3 + bytes.len());
            window.extend_from_slice(&self.tail);
            window.extend_from_slice(bytes);
            if window.windows(4).any(|w| w == b"\r\n\r\n") {
                self.phase = Phase::Busy;
            }
        }
        let keep = bytes.len().min(3);
        self.tail.rotate_left(keep);
        self.tail[3 - keep..].copy_from_slice(&bytes[bytes.len() - keep..]);
    }

    /// An answer went out: idle again until the next request.
    fn on_write(&mut self) {
        self.phase = Phase::Idle;
        let end = Instant::now() + self.idle;
        self.deadline.as_mut().reset(end);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled()[before..].to_vec();
                self.on_read(&read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.phase == Phase::Busy => Poll::Pending,
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client was idle, or sent its request too slowly",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.on_write();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.on_write();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client's address, as each request's `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose one route answers after `handler_ms`, guarded with a 300 ms limit.
    async fn guarded(handler_ms: u64) -> SocketAddr {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                tokio::time::sleep(Duration::from_millis(handler_ms)).await;
                "done"
            }),
        );
        let listener = GuardedListener::with_limits(inner, 8, Duration::from_millis(300));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Reads until the server closes the connection (or 5 s pass): what it sent.
    async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out));
        match read.await {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn idle_and_trickling_connections_are_closed_and_slow_handlers_are_not() {
        let addr = guarded(800).await;
        // A connection that never sends anything.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_until_closed(&mut silent).await.as_deref(), Some(""));

        // A head that trickles in, a byte at a time well within the idle time.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n";
        let mut closed = false;
        for b in head.iter().cycle().take(200) {
            if slow.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed || read_until_closed(&mut slow).await.is_some());

        // A request whose handler takes longer than the idle time is answered.
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut busy).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
    }
}
