//! The block map without reading back what this run wrote: a fresh acquisition reads no part
//! checkpoint; a resumed or recovered one reads the parts of the earlier run, a bounded number
//! at once, and writes the same block map byte for byte.

use super::store::TestStore;
use super::*;
use crate::engine::blockmap::{HeldRows, Row};

/// 25 data blocks in a 1 GiB volume: 3 parts in the blocks layout, 205 in the raw one.
fn volume() -> (MemorySource, Vec<u64>) {
    let indexes: Vec<u64> = (0..25).map(|i| i * 70 + 1).collect();
    (MemorySource::pattern(BLOCK_SIZE, 2048, &indexes), indexes)
}

fn with_layout(layout: Layout) -> AcquireOptions {
    AcquireOptions {
        layout,
        ..options()
    }
}

#[tokio::test]
async fn a_fresh_acquisition_reads_no_part_checkpoint_back() {
    for layout in [Layout::Blocks, Layout::Raw] {
        let (source, indexes) = volume();
        let sink = TestStore::default();
        let got = run_on(&source, &sink, &with_layout(layout), "snap-1", "p/")
            .await
            .expect("acquired");
        assert!(got.parts > 1, "{}: several parts", layout.as_str());
        assert_eq!(
            sink.checkpoint_gets(),
            0,
            "{}: no checkpoint GET",
            layout.as_str()
        );
        assert_eq!(
            (got.blocks_stored, got.aws_checksums_matched),
            (25, Some(25))
        );
        let map = sink.inner.object("p/data/blockmap.tsv").expect("map");
        assert_eq!(got.block_map_sha256, hex::encode(Sha256::digest(&map)));
        let entries = block_map_entries(map);
        assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), indexes);
        for (n, e) in entries.iter().enumerate() {
            let object_offset = match layout {
                Layout::Blocks => n as u64 * BLOCK_SIZE,
                Layout::Raw => e.offset,
            };
            assert_eq!(e.object_offset, object_offset);
            assert_eq!(e.sha256, hex::encode(Sha256::digest(source.block(e.index))));
        }
    }
}

#[tokio::test]
async fn a_resumed_acquisition_writes_the_block_map_of_a_fresh_one_byte_for_byte() {
    for layout in [Layout::Blocks, Layout::Raw] {
        let (source, _) = volume();
        let options = with_layout(layout);
        let fresh_sink = MemoryStore::default();
        let fresh = run_on(&source, &fresh_sink, &options, "snap-1", "p/")
            .await
            .expect("acquired");
        let fresh_map = fresh_sink.object("p/data/blockmap.tsv").expect("map");

        let sink = TestStore::default();
        sink.inner.stop_at_part(3);
        run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .expect_err("part 3 fails");
        sink.reset();
        let resumed = run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .expect("resumed");
        assert_eq!(resumed.resumed_parts, 2);
        assert_eq!(
            sink.checkpoint_gets(),
            3,
            "{}: checkpoint 2 for the resume point, 1 and 2 for the block map, none of this run's",
            layout.as_str()
        );
        assert_eq!(
            sink.inner.object("p/data/blockmap.tsv").expect("map"),
            fresh_map,
            "{}: the same block map",
            layout.as_str()
        );
        assert_eq!(
            (
                resumed.block_map_sha256,
                resumed.block_map_bytes,
                resumed.blocks_stored,
                resumed.aws_checksums_matched
            ),
            (
                fresh.block_map_sha256,
                fresh.block_map_bytes,
                fresh.blocks_stored,
                fresh.aws_checksums_matched
            )
        );
    }
}

#[tokio::test]
async fn a_recovered_acquisition_reads_its_checkpoints_a_bounded_number_at_once() {
    // The raw layout: 205 parts, all stored by the earlier run.
    let (source, _) = volume();
    let options = with_layout(Layout::Raw);
    let sink = TestStore::default();
    let first = run_on(&source, &sink, &options, "snap-1", "p/")
        .await
        .expect("acquired");
    let map = sink.inner.object("p/data/blockmap.tsv").expect("map");
    sink.inner.remove(&marker_key("p/"));
    sink.inner.remove("p/data/blockmap.tsv");
    sink.reset();
    let recovered = run_on(&source, &sink, &options, "snap-1", "p/")
        .await
        .expect("recovered");
    assert_eq!(recovered.fetched_now, 0);
    assert_eq!(sink.inner.object("p/data/blockmap.tsv").expect("map"), map);
    assert_eq!(recovered.blocks_stored, first.blocks_stored);
    // Recovery reads checkpoints 1..=206 (the last is absent) one by one to check the object;
    // the block map reads the 205 again.
    assert_eq!(sink.checkpoint_gets(), 206 + 205);
    let peak = sink.peak_in_flight();
    assert!(
        (2..=16).contains(&peak),
        "block-map reads overlap, at most 16 at once: {peak}"
    );
}

#[tokio::test]
async fn a_resumed_part_whose_checkpoint_has_a_differing_aws_checksum_is_refused() {
    let (source, _) = volume();
    let sink = MemoryStore::default();
    sink.stop_at_part(3);
    run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("part 3 fails");
    // Part 1's checkpoint edited: the resume point (part 2) does not look at it, the block map
    // reads it back and must refuse it.
    edit_first_aws_checksum(&sink, &part_key("p/", 1));
    let err = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("1 of 25 blocks") && text.contains("AWS checksum") && text.contains("snap-1"),
        "{text}"
    );
    assert!(sink.object("p/data/blockmap.tsv").is_none());
    assert!(sink.object(&marker_key("p/")).is_none());
}

#[test]
fn held_rows_stop_at_the_budget_and_keep_what_fit() {
    let row = || -> Row { (1, "a".repeat(64), "b".repeat(44)) };
    let per_row = size_of::<Row>() + 64 + 44;
    let mut held = HeldRows::new(5 * per_row);
    held.hold(1, vec![row(); 2]);
    held.hold(2, vec![row(); 2]);
    held.hold(3, vec![row(); 2]); // 6 rows: over the budget
    held.hold(4, vec![row(); 1]); // would fit, but later parts are read back once over
    assert_eq!(held.len(), 2);
    assert_eq!(held.take(1).map(|r| r.len()), Some(2));
    assert_eq!(held.take(2).map(|r| r.len()), Some(2));
    assert!(held.take(3).is_none() && held.take(4).is_none());
    assert_eq!(HeldRows::new(0).len(), 0);
}
