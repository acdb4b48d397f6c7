//! Memory images (items of kind `memory`): a LiME image as one object, read in ranges so that
//! hashing or exporting it holds a few MiB whatever its size, and its LiME ranges read from the
//! headers alone.

use forensnap_core::memory::{LIME_HEADER_BYTES, LimeRange, lime_ranges};
use forensnap_store::{CloudError, ErrorKind, EvidenceRead};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::ByteProgress;

/// Bytes per ranged read.
pub const READ_BYTES: u64 = 8 << 20;
/// Ranged reads in flight (memory held: this x [`READ_BYTES`]).
pub const READS_IN_FLIGHT: usize = 4;

/// The `size` bytes of `key`, in order, as `(offset, bytes)` chunks of [`READ_BYTES`], read
/// [`READS_IN_FLIGHT`] at a time; a short read is an error naming its offset.
pub fn chunks<'a, K: EvidenceRead>(
    reader: &'a K,
    key: &'a str,
    size: u64,
) -> impl Stream<Item = Result<(u64, Vec<u8>), CloudError>> + 'a {
    let ranges = (0..size.div_ceil(READ_BYTES)).map(move |i| {
        let start = i * READ_BYTES;
        (start, READ_BYTES.min(size - start))
    });
    futures::stream::iter(ranges)
        .map(move |(start, len)| async move {
            let bytes = reader.get_range(key, start, len).await?;
            if bytes.len() as u64 != len {
                return Err(CloudError::new(
                    ErrorKind::Other,
                    "GetObject",
                    format!(
                        "{key}: {} bytes at offset {start}, {len} expected",
                        bytes.len()
                    ),
                ));
            }
            Ok((start, bytes))
        })
        .buffered(READS_IN_FLIGHT)
}

/// The SHA-256 (hex) of the `size` bytes of `key`, read in ranges.
pub async fn sha256_of<K: EvidenceRead>(
    reader: &K,
    key: &str,
    size: u64,
    progress: &dyn ByteProgress,
) -> Result<String, CloudError> {
    let mut hasher = Sha256::new();
    let mut reads = std::pin::pin!(chunks(reader, key, size));
    while let Some(read) = reads.next().await {
        let (start, bytes) = read?;
        hasher.update(&bytes);
        progress.position(key, start + bytes.len() as u64, size);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The LiME ranges of the `size` bytes of `key`, read header to header (32 bytes per range).
pub async fn lime_ranges_of<K: EvidenceRead>(
    reader: &K,
    key: &str,
    size: u64,
) -> Result<Vec<LimeRange>, String> {
    let mut headers = std::collections::BTreeMap::new();
    let mut offset = 0u64;
    while offset < size {
        let len = (LIME_HEADER_BYTES as u64).min(size - offset);
        let bytes = reader
            .get_range(key, offset, len)
            .await
            .map_err(|e| e.to_string())?;
        let Ok(header) = <[u8; LIME_HEADER_BYTES]>::try_from(bytes.as_slice()) else {
            break;
        };
        headers.insert(offset, header);
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let (start, end) = (word(8), word(16));
        if end < start {
            break;
        }
        offset = offset
            .saturating_add(LIME_HEADER_BYTES as u64)
            .saturating_add(end - start + 1);
    }
    // The pure walk names what is wrong (a foreign header, a range past the end).
    lime_ranges(size, |at| headers.get(&at).copied()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use forensnap_core::memory::LIME_MAGIC;
    use forensnap_store::{EvidenceWrite, MemoryStore};

    fn image(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (start, end) in ranges {
            let mut h = [0u8; 32];
            h[0..4].copy_from_slice(&LIME_MAGIC.to_le_bytes());
            h[8..16].copy_from_slice(&start.to_le_bytes());
            h[16..24].copy_from_slice(&end.to_le_bytes());
            out.extend_from_slice(&h);
            out.extend((0..=(end - start)).map(|i| (i % 251) as u8));
        }
        out
    }

    #[tokio::test]
    async fn a_stored_image_is_hashed_in_ranges_and_its_lime_headers_read() {
        let store = MemoryStore::new();
        // Larger than one read, not a multiple of it.
        let img = image(&[(0, (READ_BYTES + 4095) * 2), (0x1_0000_0000, 0x1_0000_0fff)]);
        store
            .put_new(
                "m/data/memory.lime",
                img.clone(),
                "application/octet-stream",
            )
            .await
            .expect("put");
        let size = img.len() as u64;
        let sha = sha256_of(&store, "m/data/memory.lime", size, &crate::NoProgress)
            .await
            .expect("hash");
        assert_eq!(sha, hex::encode(Sha256::digest(&img)));
        let ranges = lime_ranges_of(&store, "m/data/memory.lime", size)
            .await
            .expect("lime");
        assert_eq!(ranges.len(), 2);
        assert!(
            lime_ranges_of(&store, "m/data/memory.lime", size + 1)
                .await
                .is_err(),
            "a size the headers do not add up to is named"
        );
        let short = sha256_of(&store, "m/data/memory.lime", size + 10, &crate::NoProgress).await;
        assert!(short.is_err(), "a short object is an error, not a hash");
    }
}
