//! A stream that fails when its first byte does not arrive in time.
//!
//! hyper's `header_read_timeout` covers HTTP/1.1 headers, but nothing bounds a client
//! that finishes the TLS handshake and then stays silent: hyper-util's auto builder waits
//! for the HTTP/2 preface (or a request line) for ever, so idle sockets could pile up.
//! Wrapping the TLS stream in [`FirstByte`] closes such a connection after the deadline;
//! once a byte has arrived, the stream is a plain pass-through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `S`, with a deadline for its first readable byte.
pub struct FirstByte<S> {
    inner: S,
    /// `None` once the first byte has arrived.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstByte<S> {
    pub fn new(inner: S, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByte<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = this.deadline.as_mut() {
            match &polled {
                // Data (or end of stream, or an error): the deadline no longer matters.
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.deadline = None,
                Poll::Ready(_) => {}
                Poll::Pending => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the header timeout",
                        )));
                    }
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByte<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn silence_past_the_deadline_is_an_error() {
        let (_client, server) = tokio::io::duplex(64);
        let mut stream = FirstByte::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn after_the_first_byte_the_deadline_is_gone() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = FirstByte::new(server, Duration::from_millis(50));
        client.write_all(b"a").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(stream.read(&mut buf).await.expect("read"), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"b").await.expect("write");
        assert_eq!(stream.read(&mut buf).await.expect("read"), 1);
    }
}
