//! Lingering close (RFC 9112 §9.6): when the gateway closes a connection
//! while the client may still be sending — it refused oversized headers
//! (431) or an oversized body (413), or answered without reading the body —
//! closing at once with unread input makes the kernel send a reset, and a
//! reset can destroy the answer before the client reads it. So a closed
//! connection first shuts down its sending half (the client sees the answer
//! and then end of stream) and keeps reading and discarding until the client
//! closes too, for at most [`LINGER_TOTAL`] and at most [`LINGER_IDLE`]
//! without input. A client that closed first costs two system calls.

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Longest time a closed connection is drained.
pub const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// Longest wait for more input while draining.
pub const LINGER_IDLE: Duration = Duration::from_secs(2);

/// A client connection that lingers when dropped.
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    pub fn new(stream: TcpStream) -> Lingering {
        Lingering { stream: Some(stream) }
    }

    fn io(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        let _ = socket2::SockRef::from(&stream).shutdown(Shutdown::Write);
        let mut buf = [0u8; 4096];
        // Usually the client has closed already, or its last bytes are here.
        for _ in 0..4 {
            match stream.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(stream));
        }
    }
}

/// Read and discard until the client closes or a limit is reached.
async fn drain(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let end = Instant::now() + LINGER_TOTAL;
    let mut buf = vec![0u8; 16 * 1024];
    while Instant::now() < end {
        match timeout(LINGER_IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}
