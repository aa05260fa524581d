//! A first-bytes deadline for accepted connections.
//!
//! hyper's HTTP/1 `header_read_timeout` (hyper 1.12) starts as soon as the connection waits for a
//! request head, also between keep-alive requests, so idle HTTP/1 connections are closed after
//! it. But the auto (HTTP/1 + h2c) builder first reads the protocol preface with no deadline at
//! all, so a client that connects and sends nothing (or one byte of `PRI *`) would hold a
//! connection slot forever. [`FirstBytes`] fails the read with `TimedOut` if the protocol is
//! not known by the deadline.
//!
//! Plain TCP connections do not go through the auto builder: [`sniff`] peeks (without
//! consuming) at the first bytes under the same deadline and the connection is then served by
//! the HTTP/1 or HTTP/2 builder directly. Consuming the first bytes (as the auto builder does)
//! hands hyper's HTTP/1 reader a short first read, which doubles its 8 KiB read buffer to
//! 16 KiB for the life of every keep-alive connection.
//!
//! Invariant: the deadline only applies until the bytes read so far stop matching the h2c
//! preface or the whole 24-byte preface arrived; after that it never fires (long responses
//! with no client bytes are not cut).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a plain connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    /// h2c with prior knowledge (the 24-byte connection preface).
    Http2,
}

/// Wait at most `deadline` for the first bytes of `stream` to tell HTTP/1 from the h2c preface,
/// without consuming them. `Ok(None)`: the peer closed without sending anything; `TimedOut`:
/// no decision by the deadline (silence, or a prefix of the preface and then silence).
pub async fn sniff(stream: &TcpStream, deadline: Duration) -> io::Result<Option<Proto>> {
    let decide = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            if !H2_PREFACE.starts_with(&buf[..n]) {
                return Ok(Some(Proto::Http1));
            }
            if n == H2_PREFACE.len() {
                return Ok(Some(Proto::Http2));
            }
            // A prefix of the preface (rare: a split first segment). Unread bytes keep the
            // socket readable, so peek would return at once: wait a little between looks.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    match tokio::time::timeout(deadline, decide).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no request within the header read deadline",
        )),
    }
}

/// `io` with a deadline for its first bytes (see the module docs).
#[derive(Debug)]
pub struct FirstBytes<IO> {
    io: IO,
    sleep: Option<Pin<Box<Sleep>>>,
    seen: Vec<u8>,
}

impl<IO> FirstBytes<IO> {
    pub fn new(io: IO, deadline: Duration) -> Self {
        FirstBytes {
            io,
            sleep: Some(Box::pin(tokio::time::sleep(deadline))),
            seen: Vec::with_capacity(H2_PREFACE.len()),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FirstBytes<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.sleep.is_some() {
                    let got = &buf.filled()[before..];
                    let want = H2_PREFACE.len() - this.seen.len();
                    this.seen.extend_from_slice(&got[..got.len().min(want)]);
                    if got.is_empty()
                        || this.seen.len() == H2_PREFACE.len()
                        || !H2_PREFACE.starts_with(&this.seen)
                    {
                        this.sleep = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some(s) = &mut this.sleep
                    && s.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header read deadline",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FirstBytes<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn sniff_tells_http1_from_h2c_without_consuming() {
        let (server, mut client) = pair().await;
        client.write_all(b"POST /mcp HTTP/1.1\r\n").await.unwrap();
        let p = sniff(&server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(p, Some(Proto::Http1));
        // nothing was consumed: the server still reads the whole request line
        let mut buf = [0u8; 20];
        let mut server = server;
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"POST /mcp HTTP/1.1\r\n");

        // the preface split over two writes is still h2c
        let (server, mut client) = pair().await;
        client.write_all(&H2_PREFACE[..9]).await.unwrap();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(&H2_PREFACE[9..]).await.unwrap();
            client
        });
        let p = sniff(&server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(p, Some(Proto::Http2));
        drop(later.await.unwrap());

        // "P" then "OST": HTTP/1 once the second byte stops matching
        let (server, mut client) = pair().await;
        client.write_all(b"P").await.unwrap();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"OST / HTTP/1.1\r\n").await.unwrap();
            client
        });
        let p = sniff(&server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(p, Some(Proto::Http1));
        drop(later.await.unwrap());

        // closed without a byte
        let (server, client) = pair().await;
        drop(client);
        assert_eq!(sniff(&server, Duration::from_secs(10)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sniff_times_out_on_silence_and_on_a_stalled_preface() {
        let (server, _client) = pair().await;
        let e = sniff(&server, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (server, mut client) = pair().await;
        client.write_all(b"PRI * ").await.unwrap();
        let e = sniff(&server, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out_and_http1_disarms() {
        let (a, _b) = tokio::io::duplex(64);
        let mut r = FirstBytes::new(a, Duration::from_secs(1));
        let mut buf = [0u8; 8];
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        // "PO" no longer matches the h2c preface: the deadline is off for good
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = FirstBytes::new(a, Duration::from_secs(1));
        b.write_all(b"POST").await.unwrap();
        assert_eq!(r.read(&mut buf).await.unwrap(), 4);
        let pending = tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf)).await;
        assert!(pending.is_err(), "read must stay pending, not time out");

        // one byte of the preface and silence: still times out
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = FirstBytes::new(a, Duration::from_secs(1));
        b.write_all(b"P").await.unwrap();
        assert_eq!(r.read(&mut buf).await.unwrap(), 1);
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
