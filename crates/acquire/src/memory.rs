//! An in-memory block source for unit tests: a sparse volume with injectable throttling and
//! corruption, counting listing and read requests and the most that were ever in flight at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use sha2::{Digest, Sha256};

use forensnap_ports::{
    BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError, ThrottleScope,
};

/// A sparse volume held in memory.
pub struct MemorySource {
    block_size: u64,
    volume_blocks: u64,
    /// Listed block indexes; their bytes are generated on demand, so a large volume costs no
    /// memory (the memory-bound test relies on it).
    blocks: BTreeSet<u64>,
    faults: Mutex<Faults>,
    /// ListSnapshotBlocks calls made.
    pub lists: AtomicUsize,
    /// GetSnapshotBlock calls made.
    pub gets: AtomicUsize,
    in_flight: AtomicUsize,
    /// Most GetSnapshotBlock calls ever in flight at once.
    pub peak_in_flight: AtomicUsize,
    /// Answers take a random time up to this many microseconds (0: answer at once), so that
    /// reads finish out of order.
    jitter_micros: u64,
}

#[derive(Default)]
struct Faults {
    throttles: u32,
    scope: Option<ThrottleScope>,
    corrupt: BTreeMap<u64, u32>,
}

impl MemorySource {
    /// A volume of `volume_blocks` blocks with data (a recognisable pattern) at `indexes`.
    pub fn pattern(block_size: u64, volume_blocks: u64, indexes: &[u64]) -> Self {
        let blocks = indexes.iter().copied().collect();
        MemorySource {
            block_size,
            volume_blocks,
            blocks,
            faults: Mutex::default(),
            lists: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            jitter_micros: 0,
        }
    }

    /// Answers take a random time up to `max` (reads finish out of order).
    pub fn with_jitter(mut self, max: std::time::Duration) -> Self {
        self.jitter_micros = max.as_micros() as u64;
        self
    }

    /// The bytes of block `index` (zeros when unlisted), generated from the index.
    pub fn block(&self, index: u64) -> Vec<u8> {
        if !self.blocks.contains(&index) {
            return vec![0; self.block_size as usize];
        }
        (0..self.block_size)
            .map(|b| (b as u8) ^ (index as u8).wrapping_mul(41) ^ ((b >> 9) as u8))
            .collect()
    }

    /// The whole volume as a raw image (for tests of small volumes).
    pub fn raw_image(&self) -> Vec<u8> {
        (0..self.volume_blocks)
            .flat_map(|i| self.block(i))
            .collect()
    }

    /// The token the source accepts for `index`.
    pub fn token(&self, index: u64) -> String {
        format!("token-{index}")
    }

    /// The next `n` reads are throttled (AWS naming no quota).
    pub fn throttle_next(&self, n: u32) {
        self.throttle_next_as(n, ThrottleScope::Unknown);
    }

    /// The next `n` reads are throttled, AWS naming `scope`'s quota.
    pub fn throttle_next_as(&self, n: u32, scope: ThrottleScope) {
        let mut faults = self.faults.lock().expect("faults");
        (faults.throttles, faults.scope) = (n, Some(scope));
    }

    /// The next `n` reads of block `index` come back with one byte flipped.
    pub fn corrupt(&self, index: u64, n: u32) {
        self.faults.lock().expect("faults").corrupt.insert(index, n);
    }
}

impl BlockSource for MemorySource {
    async fn list(
        &self,
        _: &str,
        starting_index: u64,
        _: Option<&str>,
        max_results: u32,
    ) -> Result<BlockPage, SourceError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let mut listed = self.blocks.range(starting_index..).copied();
        let blocks: Vec<ListedBlock> = listed
            .by_ref()
            .take(max_results as usize)
            .map(|i| ListedBlock {
                index: i,
                token: self.token(i),
            })
            .collect();
        let more = listed.next().is_some();
        Ok(BlockPage {
            next_token: more.then(|| {
                format!(
                    "page-after-{}",
                    blocks.last().map(|b| b.index).unwrap_or(starting_index)
                )
            }),
            blocks,
            volume_bytes: self.volume_blocks * self.block_size,
            block_size: self.block_size,
        })
    }

    async fn get(&self, _: &str, index: u64, token: &str) -> Result<FetchedBlock, SourceError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        if self.jitter_micros > 0 {
            let wait = fastrand::u64(0..=self.jitter_micros);
            tokio::time::sleep(std::time::Duration::from_micros(wait)).await;
        } else {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if token != self.token(index) {
            return Err(SourceError::Fatal(format!(
                "ValidationException: bad token for block {index}"
            )));
        }
        let mut data = self.block(index);
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
        {
            let mut faults = self.faults.lock().expect("faults");
            if faults.throttles > 0 {
                faults.throttles -= 1;
                return Err(SourceError::Throttled(
                    faults.scope.unwrap_or(ThrottleScope::Unknown),
                    "RequestThrottledException".into(),
                ));
            }
            if let Some(left) = faults.corrupt.get_mut(&index)
                && *left > 0
            {
                *left -= 1;
                let at = (index as usize * 31) % data.len();
                data[at] ^= 0xff;
            }
        }
        Ok(FetchedBlock {
            data_length: data.len() as u64,
            data: data.into(),
            checksum,
            algorithm: "SHA256".into(),
        })
    }
}
