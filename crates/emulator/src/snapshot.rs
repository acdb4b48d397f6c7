//! Synthetic snapshots: which blocks of a volume hold data ([`Snapshot`]), and the bytes every
//! block serves ([`block`]), drawn from a pool of precomputed blocks so that the server spends its
//! CPU on HTTP, not on making or hashing data.

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// EBS block size (fixed by AWS: 512 KiB).
pub const BLOCK_SIZE: usize = 524_288;

/// Distinct block contents served (block index modulo this): enough that a reader mixing up two
/// neighbouring blocks is caught, few enough that the pool (32 MiB) stays in memory.
pub const POOL: usize = 64;

/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

/// A synthetic snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Id (any string; AWS's look like `snap-` and 17 hex digits).
    pub id: String,
    /// Volume size, GiB.
    pub volume_gib: u64,
    /// Listed (data) blocks, ascending.
    pub blocks: Vec<u64>,
}

/// How the data blocks of [`Snapshot::allocated`] lie on the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Single blocks spread evenly over the volume.
    Even,
    /// Runs of this many consecutive blocks, the runs spread evenly over the volume.
    Runs(u64),
}

impl Snapshot {
    /// A snapshot of `volume_gib` whose every `stride`-th block holds data, up to `data_blocks`.
    pub fn spread(id: &str, volume_gib: u64, data_blocks: u64) -> Snapshot {
        let total = blocks_in(volume_gib);
        let stride = (total / data_blocks.max(1)).max(1);
        Snapshot {
            id: id.into(),
            volume_gib,
            blocks: (0..data_blocks.min(total)).map(|i| i * stride).collect(),
        }
    }

    /// A snapshot of `volume_gib` of which `percent` (0..=100) is allocated, laid out as `layout`
    /// says (with runs, the figure is met to within one run).
    pub fn allocated(id: &str, volume_gib: u64, percent: f64, layout: Layout) -> Snapshot {
        let total = blocks_in(volume_gib);
        let run = match layout {
            Layout::Even => 1,
            Layout::Runs(n) => n.max(1),
        };
        let units = total.div_ceil(run);
        let wanted = (total as f64 * percent.clamp(0.0, 100.0) / 100.0).round() as u64;
        let chosen_units = ((wanted as f64 / run as f64).round() as u64).min(units);
        let mut blocks = Vec::with_capacity((chosen_units * run) as usize);
        if chosen_units > 0 {
            // Bresenham: unit u is chosen when floor((u+1)*k/n) steps past floor(u*k/n), which
            // picks exactly k of n units, evenly.
            for unit in 0..units {
                let before = unit as u128 * chosen_units as u128 / units as u128;
                let after = (unit as u128 + 1) * chosen_units as u128 / units as u128;
                if after > before {
                    let start = unit * run;
                    blocks.extend(start..(start + run).min(total));
                }
            }
        }
        Snapshot {
            id: id.into(),
            volume_gib,
            blocks,
        }
    }

    /// Blocks of the whole volume.
    pub fn volume_blocks(&self) -> u64 {
        blocks_in(self.volume_gib)
    }

    /// Bytes of data the snapshot lists.
    pub fn data_bytes(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK_SIZE as u64
    }

    /// Whether block `index` is listed.
    pub fn holds(&self, index: u64) -> bool {
        self.blocks.binary_search(&index).is_ok()
    }
}

/// Blocks in a volume of `gib`.
fn blocks_in(gib: u64) -> u64 {
    gib * GIB / BLOCK_SIZE as u64
}

/// The bytes of block `index` as the emulator serves it (of any snapshot).
pub fn block(index: u64) -> Vec<u8> {
    let seed = (index as usize % POOL) as u8;
    (0..BLOCK_SIZE)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// The precomputed blocks: bytes and base64 SHA-256, block `index` is `pool[index % POOL]`.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Bytes and base64 SHA-256 of each distinct block.
    blocks: Vec<(Bytes, String)>,
}

impl Pool {
    /// Make and hash the [`POOL`] distinct blocks (~32 MiB, hashed once).
    pub(crate) fn new() -> Pool {
        let blocks = (0..POOL as u64)
            .map(|i| {
                let data = block(i);
                let checksum =
                    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
                (Bytes::from(data), checksum)
            })
            .collect();
        Pool { blocks }
    }

    /// Bytes and base64 SHA-256 of block `index`.
    pub(crate) fn get(&self, index: u64) -> &(Bytes, String) {
        &self.blocks[index as usize % POOL]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_even_meets_the_percentage_exactly() {
        let s = Snapshot::allocated("s", 4, 60.0, Layout::Even);
        assert_eq!(s.volume_blocks(), 8192);
        assert_eq!(s.blocks.len(), 4915);
        assert!(s.blocks.windows(2).all(|w| w[0] < w[1]));
        assert!(*s.blocks.last().expect("blocks") < 8192);
    }

    #[test]
    fn allocated_runs_are_consecutive_and_within_one_run_of_the_figure() {
        let s = Snapshot::allocated("s", 1, 30.0, Layout::Runs(64));
        let wanted = (2048.0f64 * 0.3).round() as i64;
        assert!((s.blocks.len() as i64 - wanted).abs() <= 64);
        assert_eq!(s.blocks.len() % 64, 0);
        assert!(s.blocks.chunks(64).all(|run| run[63] == run[0] + 63));
    }

    #[test]
    fn allocated_bounds() {
        assert!(
            Snapshot::allocated("s", 1, 0.0, Layout::Even)
                .blocks
                .is_empty()
        );
        assert_eq!(
            Snapshot::allocated("s", 1, 100.0, Layout::Runs(7)).blocks,
            (0..2048).collect::<Vec<_>>()
        );
    }

    #[test]
    fn spread_keeps_its_old_shape() {
        let s = Snapshot::spread("s", 1, 40);
        assert_eq!(s.blocks.len(), 40);
        assert_eq!(s.blocks[1], 51);
    }

    #[test]
    fn the_pool_serves_block_by_index() {
        let pool = Pool::new();
        assert_eq!(pool.get(70).0.as_ref(), block(70).as_slice());
    }
}
