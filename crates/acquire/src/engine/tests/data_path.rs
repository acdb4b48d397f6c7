//! Round trips on the data path: every listing page is requested once (the first one, which
//! gives the volume size, included), and a resume lists again only what its first page does not
//! cover.

use std::sync::atomic::Ordering;

use super::*;

fn lists(source: &MemorySource) -> usize {
    source.lists.load(Ordering::SeqCst)
}

/// `n` listed blocks spread over a 1 GiB volume (10 blocks per part).
fn spread(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * 8 + 3).collect()
}

#[tokio::test]
async fn a_volume_that_fits_one_page_is_listed_once() {
    for layout in [Layout::Blocks, Layout::Raw] {
        let source = MemorySource::pattern(BLOCK_SIZE, 2048, &spread(60));
        let sink = MemoryStore::default();
        let options = AcquireOptions {
            layout,
            ..options()
        };
        let got = run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .expect("acquired");
        assert_eq!(got.blocks_stored, 60);
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(source.raw_image()))
        );
        assert_eq!(
            lists(&source),
            1,
            "{}: one ListSnapshotBlocks call",
            layout.as_str()
        );
    }
}

#[tokio::test]
async fn a_multi_page_volume_lists_each_page_once() {
    // 150 blocks, pages of 100: two pages.
    for layout in [Layout::Blocks, Layout::Raw] {
        let indexes = spread(150);
        let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
        let sink = MemoryStore::default();
        let options = AcquireOptions {
            layout,
            ..options()
        };
        let got = run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .expect("acquired");
        assert_eq!(lists(&source), 2, "{}: each page once", layout.as_str());
        assert_eq!(got.blocks_stored, 150);
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(source.raw_image()))
        );
        let listed: Vec<u64> = block_map_entries(sink.object("p/data/blockmap.tsv").expect("map"))
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(listed, indexes, "every listed block stored once, in order");
    }
}

#[tokio::test]
async fn a_resume_reuses_the_first_page_when_it_covers_the_resume_point_and_lists_again_otherwise()
{
    // 150 blocks, 10 per part, pages of 100: part 3 starts inside the first page, part 12 after.
    let indexes = spread(150);
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let uninterrupted = {
        let sink = MemoryStore::default();
        let got = run_on(&source, &sink, &options(), "snap-1", "p/")
            .await
            .expect("acquired");
        (got, sink.object("p/data/blockmap.tsv").expect("map"))
    };
    for failing in [3u32, 12] {
        let sink = MemoryStore::default();
        sink.stop_at_part(failing);
        run_on(&source, &sink, &options(), "snap-1", "p/")
            .await
            .expect_err("a part fails");
        let (before, gets) = (lists(&source), source.gets.load(Ordering::SeqCst));
        let resumed = run_on(&source, &sink, &options(), "snap-1", "p/")
            .await
            .expect("resumed");
        assert_eq!(resumed.resumed_parts, failing - 1);
        assert_eq!(
            source.gets.load(Ordering::SeqCst) - gets,
            150 - (failing as usize - 1) * 10,
            "part {failing}: only the parts not stored are fetched"
        );
        // Part 3: the first page is reused and the second listed once. Part 12: the first
        // page (needed for the volume size) ends before the resume point; listing restarts at
        // the resume point and the 40 blocks left fit one page.
        assert_eq!(lists(&source) - before, 2, "part {failing}");
        assert_eq!(resumed.image_sha256, uninterrupted.0.image_sha256);
        assert_eq!(resumed.composite_sha256, uninterrupted.0.composite_sha256);
        assert_eq!(
            sink.object("p/data/blocks.bin").expect("object"),
            expected_object(&source, &indexes)
        );
        assert_eq!(
            sink.object("p/data/blockmap.tsv").expect("map"),
            uninterrupted.1,
            "part {failing}: the same block map"
        );
    }
}
