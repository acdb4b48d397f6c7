//! Memory stays bounded whatever the volume size: acquiring 1 GiB of data (and a 2 GiB volume)
//! allocates at most `window` blocks read ahead plus `uploads + 1` parts and the parts queued for
//! hashing, and a few blocks more,
//! at any moment.

use forensnap_acquire::memory::MemorySource;
use forensnap_acquire::{AcquireOptions, AdaptiveLimit, acquire};
use forensnap_core::layout::BLOCK_SIZE;
use forensnap_store::MemoryStore;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquiring_a_gibibyte_holds_only_the_window_in_memory() {
    let indexes: Vec<u64> = (0..2048).map(|i| i * 2).collect(); // 1 GiB of data in a 2 GiB volume
    let source = MemorySource::pattern(BLOCK_SIZE, 4096, &indexes);
    let sink = MemoryStore::discarding();
    let limit = AdaptiveLimit::new(8, 8, 1_000_000.0);
    let options = AcquireOptions {
        window: 8,
        uploads: 2,
        part_bytes: 5 << 20,
        list_page: 1_000,
        ..AcquireOptions::default()
    };
    let _profiler = dhat::Profiler::builder().testing().build();
    let baseline = dhat::HeapStats::get().curr_bytes;
    let got = acquire(
        &source,
        &sink,
        &limit,
        &options,
        "snap-big",
        "m/",
        &forensnap_evidence::NoProgress,
    )
    .await
    .expect("acquired");
    let peak = dhat::HeapStats::get().max_bytes - baseline;
    assert_eq!(got.blocks_stored, 2048);
    eprintln!("peak heap above baseline while acquiring 1 GiB of data: {peak} bytes");
    // Stated bound: window blocks and (uploads + 1 + hash backlog) parts of 10 blocks, 4 blocks
    // more, plus 4 MiB
    // for listings, checkpoints and the block map text of this volume.
    let per_part = forensnap_acquire::part_blocks(2 << 30, options.part_bytes).expect("fits");
    let blocks = options.window as u64
        + (options.uploads as u64 + 1 + forensnap_acquire::HASH_BACKLOG_PARTS as u64) * per_part
        + 4;
    let bound = blocks * BLOCK_SIZE + (4 << 20);
    assert!(
        (peak as u64) < bound,
        "peak {peak} bytes above baseline, bound {bound}"
    );
}
