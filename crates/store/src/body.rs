//! The body of one multipart part: its bytes held as chunks in order (block buffers shared with
//! the rest of the pipeline, never copied into one buffer), of a known length. Cloning is cheap
//! (reference counts), so a part whose upload failed is sent again from the same bytes, by the
//! SDK's own retry or by the caller's.

use bytes::Bytes;

/// A multipart part's bytes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartBody {
    chunks: Vec<Bytes>,
    len: u64,
}

impl PartBody {
    /// An empty body with room for `chunks` chunks.
    pub fn with_capacity(chunks: usize) -> Self {
        PartBody {
            chunks: Vec::with_capacity(chunks),
            len: 0,
        }
    }

    /// Append a chunk.
    pub fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len() as u64;
        self.chunks.push(chunk);
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The body's checksum in `algorithm`, as S3 reports it.
    pub fn checksum(&self, algorithm: crate::PartAlgorithm) -> crate::PartChecksum {
        let mut hasher = crate::PartHasher::new(algorithm);
        for chunk in &self.chunks {
            hasher.update(chunk);
        }
        hasher.finish()
    }
}

impl From<Vec<u8>> for PartBody {
    fn from(bytes: Vec<u8>) -> Self {
        let mut body = PartBody::with_capacity(1);
        body.push(Bytes::from(bytes));
        body
    }
}

impl From<Bytes> for PartBody {
    fn from(bytes: Bytes) -> Self {
        let mut body = PartBody::with_capacity(1);
        body.push(bytes);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_counts_its_chunks_and_clones_share_them() {
        let mut body = PartBody::with_capacity(2);
        assert!(body.is_empty());
        body.push(Bytes::from_static(b"abc"));
        body.push(Bytes::from(vec![7u8; 5]));
        let again = body.clone();
        assert_eq!((body.len(), body.chunks().len()), (8, 2));
        assert_eq!(again, body);
        assert_eq!(
            again.chunks()[1].as_ptr(),
            body.chunks()[1].as_ptr(),
            "a clone shares the bytes"
        );
    }
}
