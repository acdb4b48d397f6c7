//! SHA-256 that can stop and resume, and the full-image hash of a sparse volume.
//!
//! Acquisition hashes the whole logical volume in order, zero runs included, so that the image
//! SHA-256 equals `sha256sum` of the raw disk. A collection that crashes part-way must end with
//! the same hash without fetching again what it already stored, so the hash state is saved at
//! checkpoints: [`ResumableSha256`] keeps SHA-256's eight state words and length itself and
//! drives `sha2`'s compression function (SHA-NI accelerated where the CPU has it).

use sha2::digest::generic_array::GenericArray;

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 whose state can be written down ([`ResumableSha256::checkpoint`]) and restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far.
    length: u64,
    /// Bytes not yet forming a 64-byte block.
    buffer: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 {
            state: INITIAL,
            length: 0,
            buffer: Vec::with_capacity(64),
        }
    }
}

/// A saved hash state: hex text, safe to store in a JSON checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sha256Checkpoint {
    /// The eight state words, hex, concatenated.
    pub state: String,
    /// Bytes hashed so far.
    pub length: u64,
    /// Buffered tail (< 64 bytes), hex.
    pub buffer: String,
}

/// A checkpoint that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash checkpoint is not valid: {0}")]
pub struct CheckpointError(&'static str);

impl ResumableSha256 {
    /// A fresh hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Hash more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        if !self.buffer.is_empty() {
            let take = (64 - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() < 64 {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.buffer);
            sha2::compress256(&mut self.state, &[block]);
            self.buffer.clear();
        }
        let whole = data.len() / 64 * 64;
        compress_all(&mut self.state, &data[..whole]);
        self.buffer.extend_from_slice(&data[whole..]);
    }

    /// Hash `count` zero bytes (a sparse run) without allocating them all.
    pub fn update_zeros(&mut self, mut count: u64) {
        static ZEROS: [u8; 65_536] = [0; 65_536];
        while count > 0 {
            let step = count.min(ZEROS.len() as u64) as usize;
            self.update(&ZEROS[..step]);
            count -= step as u64;
        }
    }

    /// The digest, hex.
    pub fn finalize_hex(&self) -> String {
        hex::encode(self.finalize())
    }

    /// The digest.
    pub fn finalize(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut tail = self.buffer.clone();
        tail.push(0x80);
        while tail.len() % 64 != 56 {
            tail.push(0);
        }
        tail.extend_from_slice(&(self.length.wrapping_mul(8)).to_be_bytes());
        compress_all(&mut state, &tail);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The state, to store and later [`ResumableSha256::restore`].
    pub fn checkpoint(&self) -> Sha256Checkpoint {
        Sha256Checkpoint {
            state: self.state.iter().map(|w| format!("{w:08x}")).collect(),
            length: self.length,
            buffer: hex::encode(&self.buffer),
        }
    }

    /// Continue from a stored state.
    pub fn restore(saved: &Sha256Checkpoint) -> Result<Self, CheckpointError> {
        if saved.state.len() != 64 {
            return Err(CheckpointError("state must be 64 hex digits"));
        }
        let mut state = [0u32; 8];
        for (i, word) in state.iter_mut().enumerate() {
            *word = u32::from_str_radix(&saved.state[i * 8..i * 8 + 8], 16)
                .map_err(|_| CheckpointError("state is not hex"))?;
        }
        let buffer =
            hex::decode(&saved.buffer).map_err(|_| CheckpointError("buffer is not hex"))?;
        if buffer.len() >= 64 || saved.length % 64 != buffer.len() as u64 {
            return Err(CheckpointError("buffer does not match the length"));
        }
        Ok(ResumableSha256 {
            state,
            length: saved.length,
            buffer,
        })
    }
}

/// Run the compression function over whole 64-byte chunks, without copying them.
fn compress_all(state: &mut [u32; 8], data: &[u8]) {
    debug_assert_eq!(data.len() % 64, 0);
    for chunk in data.chunks_exact(64) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(chunk)));
    }
}

/// The SHA-256 of a logical volume fed only its data blocks: gaps hash as zeros, in order.
#[derive(Clone, Debug)]
pub struct ImageHasher {
    hash: ResumableSha256,
    /// Size of the logical volume in bytes.
    volume_bytes: u64,
}

/// A data block out of order or beyond the volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "block at offset {offset} ({len} bytes) cannot follow offset {hashed} in a volume of {volume} bytes"
)]
pub struct OrderError {
    /// Offset of the block.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Bytes already hashed.
    pub hashed: u64,
    /// Volume size.
    pub volume: u64,
}

impl ImageHasher {
    /// A hasher for a volume of `volume_bytes`.
    pub fn new(volume_bytes: u64) -> Self {
        ImageHasher {
            hash: ResumableSha256::new(),
            volume_bytes,
        }
    }

    /// Continue from a checkpoint.
    pub fn resume(volume_bytes: u64, saved: &Sha256Checkpoint) -> Result<Self, CheckpointError> {
        let hash = ResumableSha256::restore(saved)?;
        if hash.length() > volume_bytes {
            return Err(CheckpointError("checkpoint is past the end of the volume"));
        }
        Ok(ImageHasher { hash, volume_bytes })
    }

    /// Bytes of the volume hashed so far.
    pub fn position(&self) -> u64 {
        self.hash.length()
    }

    /// Hash the zeros up to `offset`, then `data`.
    pub fn block(&mut self, offset: u64, data: &[u8]) -> Result<(), OrderError> {
        let hashed = self.hash.length();
        let end = offset.checked_add(data.len() as u64);
        if offset < hashed || end.is_none_or(|end| end > self.volume_bytes) {
            return Err(OrderError {
                offset,
                len: data.len() as u64,
                hashed,
                volume: self.volume_bytes,
            });
        }
        self.hash.update_zeros(offset - hashed);
        self.hash.update(data);
        Ok(())
    }

    /// The state at this point.
    pub fn checkpoint(&self) -> Sha256Checkpoint {
        self.hash.checkpoint()
    }

    /// Zero-fill to the end of the volume and return the image SHA-256, hex.
    pub fn finish(mut self) -> String {
        let rest = self.volume_bytes - self.hash.length();
        self.hash.update_zeros(rest);
        self.hash.finalize_hex()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn matches_sha2_for_any_split() {
        for len in [0usize, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 4096 + 3] {
            let bytes = data(len, 3);
            let expected = hex::encode(Sha256::digest(&bytes));
            for cut in [0, len / 3, len / 2, len] {
                let mut hash = ResumableSha256::new();
                hash.update(&bytes[..cut]);
                let restored = ResumableSha256::restore(&hash.checkpoint()).expect("restore");
                let mut hash = restored;
                hash.update(&bytes[cut..]);
                assert_eq!(hash.finalize_hex(), expected, "len {len} cut {cut}");
            }
        }
    }

    #[test]
    fn zero_runs_hash_like_real_zeros() {
        let mut sparse = ResumableSha256::new();
        sparse.update(b"abc");
        sparse.update_zeros(200_003);
        let mut dense = b"abc".to_vec();
        dense.resize(200_006, 0);
        assert_eq!(sparse.finalize_hex(), hex::encode(Sha256::digest(&dense)));
    }

    #[test]
    fn an_image_hash_equals_sha256sum_of_the_raw_disk_and_resumes() {
        let block = 524_288u64;
        let volume = 8 * block;
        let blocks = [
            (1u64, data(block as usize, 1)),
            (2, data(block as usize, 2)),
            (7, data(block as usize, 7)),
        ];
        let mut raw = vec![0u8; volume as usize];
        for (i, b) in &blocks {
            raw[(*i * block) as usize..((*i + 1) * block) as usize].copy_from_slice(b);
        }
        let expected = hex::encode(Sha256::digest(&raw));

        let mut whole = ImageHasher::new(volume);
        for (i, b) in &blocks {
            whole.block(i * block, b).expect("in order");
        }
        assert_eq!(whole.finish(), expected);

        let mut first = ImageHasher::new(volume);
        first.block(block, &blocks[0].1).expect("in order");
        let saved = first.checkpoint();
        let mut resumed = ImageHasher::resume(volume, &saved).expect("resume");
        for (i, b) in &blocks[1..] {
            resumed.block(i * block, b).expect("in order");
        }
        assert_eq!(resumed.finish(), expected);

        let mut bad = ImageHasher::new(volume);
        bad.block(2 * block, &blocks[1].1).expect("ok");
        assert!(bad.block(block, &blocks[0].1).is_err(), "out of order");
        assert!(bad.block(volume, b"x").is_err(), "past the end");
        assert!(
            ResumableSha256::restore(&Sha256Checkpoint {
                state: "zz".into(),
                length: 0,
                buffer: String::new()
            })
            .is_err()
        );
    }
}
