//! A multipart part body sent from the chunks the acquisition engine holds (no copy into one
//! buffer), of exactly the announced length (its checksum goes in a header, computed before). The body is retryable: the SDK's own retry of a failed UploadPart sends the same
//! chunks again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use forensnap_store::PartBody;
use http_body::{Body, Frame, SizeHint};

/// The chunks of one part, sent in order.
struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Body for ChunksBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The SDK body of `part`, which the SDK may send again on a retry.
pub(crate) fn part_stream(part: PartBody) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(ChunksBody {
            chunks: part.chunks().iter().cloned().collect(),
            remaining: part.len(),
        })
    }))
}
