//! A multipart part body fed by the acquisition engine through a bounded channel, of exactly the
//! announced length, so the SDK can send its SHA-256 as a trailer that S3 checks.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use forensnap_store::PartBody;
use http_body::{Body, Frame, SizeHint};

/// A part body of exactly `remaining` bytes.
pub(crate) struct ChannelBody {
    /// Chunks in order.
    pub(crate) rx: PartBody,
    /// Bytes still to come.
    pub(crate) remaining: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                let len = chunk.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err("part body longer than announced".into())));
                }
                self.remaining -= len;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Poll::Ready(None) if self.remaining == 0 => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(format!(
                "part body ended {} bytes early",
                self.remaining
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.rx.is_closed() && self.rx.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
