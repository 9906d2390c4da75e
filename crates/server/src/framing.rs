//! JSON bodies for the errors hyper answers by itself.
//!
//! When a request cannot be parsed (bad framing, a header section over the limit, an unknown
//! HTTP version), hyper writes a bodyless response such as `400 Bad Request` with
//! `connection: close` and `content-length: 0`, and closes the connection; the router never
//! sees the request. [`ErrorBodies`] sits between hyper and the socket and gives those
//! responses the `{"error", "message"}` body every other error has. It recognises them by their
//! head: an error status line followed by exactly those two headers, which the router's own
//! responses never have (its errors always carry a JSON body, and no body it writes contains a
//! raw CR LF).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ErrorName;

/// A connection whose hyper-generated error responses get JSON bodies.
pub(crate) struct ErrorBodies<S> {
    inner: S,
    /// A rewritten response still to be written, and how much of it was.
    pending: Vec<u8>,
    sent: usize,
}

impl<S> ErrorBodies<S> {
    pub(crate) fn new(inner: S) -> Self {
        ErrorBodies {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

const MARK: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// The error name and message for a status hyper answers on its own.
fn describe(status: u16) -> (ErrorName, &'static str) {
    match status {
        400 => (
            ErrorName::InvalidArgument,
            "The request is not valid HTTP/1.1 (malformed request line, header or body framing)",
        ),
        414 => (ErrorName::InvalidArgument, "The request URI is too long"),
        431 => (
            ErrorName::InvalidArgument,
            "The request's header section is too large",
        ),
        _ => (ErrorName::Chroma, "The request could not be served"),
    }
}

/// How far from the end of a write the error head is looked for: hyper writes it last, then
/// closes; a large response is never scanned whole (the check costs the same for every write).
const TAIL: usize = 512;

/// `buf` with a bodyless hyper error response in it given a JSON body, or `None`.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let from = buf.len().saturating_sub(TAIL);
    let at = from + buf[from..].windows(MARK.len()).position(|w| w == MARK)?;
    // The status line right before the mark: "HTTP/1.1 NNN reason" (a pipelined response may
    // end just before it, without a line break).
    let line_start = from + buf[from..at].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let line = &buf[line_start..at];
    if line.windows(2).any(|w| w == b"\r\n") {
        return None;
    }
    let code = line.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(code.get(..3)?).ok()?.parse().ok()?;
    if !(400..600).contains(&status) || code.get(3) != Some(&b' ') {
        return None;
    }
    let after_mark = at + MARK.len();
    let head_end = buf[at..].windows(4).position(|w| w == b"\r\n\r\n")? + at + 4;
    let (name, message) = describe(status);
    let body = serde_json::json!({ "error": name.as_str(), "message": message }).to_string();
    let mut out = Vec::with_capacity(buf.len() + body.len() + 64);
    out.extend_from_slice(&buf[..at]);
    out.extend_from_slice(
        format!(
            "\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&buf[after_mark..head_end]);
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(&buf[head_end..]);
    Some(out)
}

impl<S: AsyncWrite + Unpin> ErrorBodies<S> {
    /// Writes what is pending; ready once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ErrorBodies<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(rewritten) = rewrite(buf) {
            self.pending = rewritten;
            self.sent = 0;
            // Taken whole; what the socket does not take now goes at the next write or flush.
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Whole buffers (hyper then flattens its writes), so a response head is seen in one piece.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn hyper_error_heads_get_a_json_body_and_other_responses_are_untouched() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 13:24:03 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(head).expect("rewritten")).expect("utf-8");
        let (h, body) = out.split_once("\r\n\r\n").expect("head and body");
        assert!(h.starts_with("HTTP/1.1 431 "));
        assert!(h.contains("content-type: application/json"));
        assert!(h.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"], "InvalidArgumentError");
        // After a pipelined response in the same buffer.
        let mut two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        two.extend_from_slice(head);
        let out = rewrite(&two).expect("rewritten");
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 431"));
        // The router's own responses, success or error, are left alone.
        assert!(
            rewrite(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").is_none()
        );
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}").is_none());
    }
}
