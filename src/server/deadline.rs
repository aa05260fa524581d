//! A first-bytes deadline for accepted connections.
//!
//! hyper's HTTP/1 `header_read_timeout` (hyper 1.12) starts as soon as the connection waits for a
//! request head, also between keep-alive requests, so idle HTTP/1 connections are closed after
//! it. But the auto (HTTP/1 + h2c) builder first reads the protocol preface with no deadline at
//! all, so a client that connects and sends nothing (or one byte of `PRI *`) would hold a
//! connection slot forever. [`FirstBytes`] fails the read with `TimedOut` if the protocol is
//! not known by the deadline.
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
use tokio::time::Sleep;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
