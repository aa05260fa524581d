//! Server-sent-events helpers: idle keep-alive comments and per-event rewriting.
//!
//! Invariant: bytes are passed on as soon as they arrive (no buffering beyond the current,
//! incomplete event for [`map_events`]; none at all for [`keep_alive`]), and a keep-alive
//! comment is only ever inserted at an event boundary, so it can never split an event.

use super::error::{BoxError, ResBody};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use std::time::Duration;

/// Keep-alive comment line.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

fn ends_event(tail: &[u8]) -> bool {
    tail.ends_with(b"\n\n") || tail.ends_with(b"\r\n\r\n") || tail.ends_with(b"\r\r")
}

/// Pass `body` through unchanged, inserting `: keep-alive` comments whenever no bytes arrived
/// for `interval` and the stream is between events.
pub fn keep_alive(body: ResBody, interval: Duration) -> ResBody {
    struct St {
        frames: BodyStream<ResBody>,
        tail: Vec<u8>,
    }
    let st = St {
        frames: BodyStream::new(body),
        tail: b"\n\n".to_vec(),
    };
    let stream = futures_util::stream::unfold(st, move |mut st| async move {
        loop {
            match tokio::time::timeout(interval, st.frames.next()).await {
                Err(_) => {
                    if ends_event(&st.tail) {
                        return Some((Ok(Frame::data(Bytes::from_static(KEEP_ALIVE))), st));
                    }
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some((Err(e), st)),
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        st.tail.extend_from_slice(d);
                        let n = st.tail.len();
                        if n > 4 {
                            st.tail.drain(..n - 4);
                        }
                    }
                    return Some((Ok(frame), st));
                }
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// Pass `body` through; if the upstream body fails (connection reset, upstream killed), log it,
/// send `last` as the final chunk and end the stream cleanly instead of tearing the response.
/// With `sse`, `last` is sent at an event boundary: a partial event in flight is closed with a
/// blank line first (the client may see that one truncated event; SSE cannot retract it).
pub fn end_cleanly(body: ResBody, last: Option<Bytes>, sse: bool) -> ResBody {
    struct St {
        frames: BodyStream<ResBody>,
        tail: Vec<u8>,
        last: Option<Bytes>,
        done: bool,
    }
    let st = St {
        frames: BodyStream::new(body),
        tail: b"\n\n".to_vec(),
        last,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        match st.frames.next().await {
            None => None,
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    st.tail.extend_from_slice(d);
                    let n = st.tail.len();
                    if n > 4 {
                        st.tail.drain(..n - 4);
                    }
                }
                Some((Ok::<_, BoxError>(frame), st))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Upstream response body broke; ending the response cleanly.");
                st.done = true;
                let last = st.last.take()?;
                let mut out = BytesMut::new();
                if sse && !ends_event(&st.tail) {
                    out.extend_from_slice(b"\n\n");
                }
                out.extend_from_slice(&last);
                Some((Ok(Frame::data(out.freeze())), st))
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// One SSE event carrying `message` as its data.
pub fn event(message: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {message}\n\n"))
}

/// Rewrite complete SSE events: `f(data)` returning `Some(new_data)` replaces the event's data
/// lines (other fields such as `id:` and `event:` are kept); `None` passes it unchanged.
pub fn map_events<F>(body: ResBody, f: F) -> ResBody
where
    F: FnMut(&str) -> Option<String> + Send + 'static,
{
    struct St<F> {
        frames: BodyStream<ResBody>,
        buf: BytesMut,
        f: F,
        done: bool,
    }
    let st = St {
        frames: BodyStream::new(body),
        buf: BytesMut::new(),
        f,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.frames.next().await {
                None => {
                    st.done = true;
                    if st.buf.is_empty() {
                        return None;
                    }
                    let rest = st.buf.split().freeze();
                    return Some((Ok::<_, BoxError>(Frame::data(rest)), st));
                }
                Some(Err(e)) => return Some((Err(e), st)),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    st.buf.extend_from_slice(&data);
                    let mut out = BytesMut::new();
                    while let Some((end, delim)) = find_event_end(&st.buf) {
                        let ev = st.buf.split_to(end + delim).freeze();
                        out.extend_from_slice(&rewrite_event(&ev, end, &mut st.f));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Frame::data(out.freeze())), st));
                    }
                }
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// Position of the first blank line and the delimiter length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn rewrite_event<F: FnMut(&str) -> Option<String>>(
    ev: &Bytes,
    body_len: usize,
    f: &mut F,
) -> Bytes {
    let Ok(text) = std::str::from_utf8(&ev[..body_len]) else {
        return ev.clone();
    };
    let mut data = String::new();
    let mut others = Vec::new();
    let mut has_data = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(d) = line.strip_prefix("data:") {
            if has_data {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
            has_data = true;
        } else {
            others.push(line);
        }
    }
    if !has_data {
        return ev.clone();
    }
    match f(&data) {
        None => ev.clone(),
        Some(new) => {
            let mut out = String::new();
            for o in others {
                out.push_str(o);
                out.push('\n');
            }
            for l in new.split('\n') {
                out.push_str("data: ");
                out.push_str(l);
                out.push('\n');
            }
            out.push('\n');
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(parts: Vec<&'static [u8]>) -> ResBody {
        let it = parts
            .into_iter()
            .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p))));
        StreamBody::new(futures_util::stream::iter(it)).boxed_unsync()
    }

    #[tokio::test]
    async fn map_events_rewrites_split_events() {
        let body = chunks(vec![
            b"id: 1\nevent: message\nda",
            b"ta: {\"a\":1}\n\n: c\n\ndata: keep\n\ndata: tail",
        ]);
        let out = map_events(body, |d| {
            (d == "{\"a\":1}").then(|| "{\"a\":2}".to_string())
        });
        let got = out.collect().await.unwrap().to_bytes();
        assert_eq!(
            &got[..],
            b"id: 1\nevent: message\ndata: {\"a\":2}\n\n: c\n\ndata: keep\n\ndata: tail"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_only_between_events() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let body = StreamBody::new(tokio_stream_from(rx)).boxed_unsync();
        let mut out = BodyStream::new(keep_alive(body, Duration::from_secs(15)));
        // idle at the start: a keep-alive arrives
        let f = out.next().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), KEEP_ALIVE);
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: half"))))
            .await
            .unwrap();
        let f = out.next().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), &b"data: half"[..]);
        // mid-event idle: no keep-alive; the next thing is the rest of the event
        let waiter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(40)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"\n\n"))))
                .await
                .unwrap();
            tx
        });
        let f = out.next().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), &b"\n\n"[..]);
        let tx = waiter.await.unwrap();
        let f = out.next().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), KEEP_ALIVE);
        drop(tx);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
