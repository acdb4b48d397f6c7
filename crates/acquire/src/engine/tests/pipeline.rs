//! The pipeline: reads finishing out of order still make byte-exact objects and the same
//! hashes; several parts upload at once; a failed part is sent again from the bytes it holds;
//! and an acquisition stopped at any write (a kill, as far as the store can tell) resumes to
//! the same object, block map and hashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::store::TestStore;
use super::*;

/// 60 data blocks in a volume of 200 blocks (6 parts of 10 in the blocks layout, 20 in the raw
/// one), answers arriving out of order.
fn jittered() -> (MemorySource, Vec<u64>) {
    let indexes: Vec<u64> = (0..60).map(|i| i * 3 + 2).collect();
    let source =
        MemorySource::pattern(BLOCK_SIZE, 200, &indexes).with_jitter(Duration::from_millis(3));
    (source, indexes)
}

fn pipelined(layout: Layout) -> AcquireOptions {
    AcquireOptions {
        window: 24,
        uploads: 3,
        layout,
        ..options()
    }
}

#[tokio::test]
async fn reads_finishing_out_of_order_make_byte_exact_objects_with_parts_uploading_at_once() {
    for layout in [Layout::Blocks, Layout::Raw] {
        let (source, indexes) = jittered();
        let sink = TestStore::new(MemoryStore::default());
        let limit = AdaptiveLimit::new(16, 16, 100_000.0);
        let options = pipelined(layout);
        let got = acquire(
            &source,
            &sink,
            &limit,
            &options,
            "snap-1",
            "p/",
            &NoProgress,
        )
        .await
        .expect("acquired");
        let name = layout.as_str();
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(source.raw_image())),
            "{name}"
        );
        let object = sink
            .inner
            .object(&format!("p/{}", layout.data_path()))
            .expect("object");
        let expected = match layout {
            Layout::Blocks => expected_object(&source, &indexes),
            Layout::Raw => source.raw_image(),
        };
        assert!(
            object == expected,
            "{name}: the object holds exactly the volume's bytes"
        );
        assert_eq!(
            got.data_sha256,
            hex::encode(Sha256::digest(&object)),
            "{name}"
        );
        assert!(
            source.peak_in_flight.load(Ordering::SeqCst) > 1,
            "{name}: reads overlap"
        );
        let peak = sink.peak_uploading();
        assert!(
            (2..=3).contains(&peak),
            "{name}: parts upload at once, at most 3: {peak}"
        );
    }
}

#[tokio::test]
async fn a_part_whose_upload_fails_is_sent_again_from_the_bytes_it_holds() {
    let (source, indexes) = jittered();
    let sink = MemoryStore::default();
    sink.fail_part_once(2);
    sink.fail_part_once(5);
    let got = run_on(&source, &sink, &pipelined(Layout::Blocks), "snap-1", "p/")
        .await
        .expect("the failed parts are retried");
    assert_eq!(
        (got.fetched_now, source.gets.load(Ordering::SeqCst)),
        (60, 60),
        "no block read twice: the part was sent again from memory"
    );
    assert_eq!(
        sink.object("p/data/blocks.bin").expect("object"),
        expected_object(&source, &indexes)
    );
    assert_eq!(sink.open_uploads(), 0);
}

#[tokio::test]
async fn an_acquisition_stopped_at_any_write_resumes_to_the_same_evidence() {
    for layout in [Layout::Blocks, Layout::Raw] {
        let name = layout.as_str();
        let options = pipelined(layout);
        let (source, _) = jittered();
        let whole = MemoryStore::default();
        let writes = Arc::new(AtomicUsize::new(0));
        let (counted, _) = whole.dying_when({
            let writes = writes.clone();
            move |_, _| {
                writes.fetch_add(1, Ordering::SeqCst);
                false
            }
        });
        let reference = run_on(&source, &counted, &options, "snap-1", "p/")
            .await
            .expect("acquired");
        let writes = writes.load(Ordering::SeqCst);
        let data = format!("p/{}", layout.data_path());
        // Stop at every write.
        let mut stopped = 0;
        for stop_at in 0..writes {
            let store = MemoryStore::default();
            let seen = AtomicUsize::new(0);
            let (dying, died) =
                store.dying_when(move |_, _| seen.fetch_add(1, Ordering::SeqCst) == stop_at);
            let run = run_on(&source, &dying, &options, "snap-1", "p/");
            tokio::select! {
                result = run => {
                    result.expect("a run that was not stopped succeeds");
                }
                () = died.notified() => stopped += 1,
            }
            let resumed = run_on(&source, &store, &options, "snap-1", "p/")
                .await
                .unwrap_or_else(|e| panic!("{name}: stopped at write {stop_at}: {e}"));
            assert_eq!(
                (
                    &resumed.image_sha256,
                    &resumed.data_sha256,
                    &resumed.block_map_sha256,
                    resumed.blocks_stored
                ),
                (
                    &reference.image_sha256,
                    &reference.data_sha256,
                    &reference.block_map_sha256,
                    reference.blocks_stored
                ),
                "{name}: stopped at write {stop_at} of {writes}"
            );
            assert!(
                store.object(&data) == whole.object(&data),
                "{name}: stopped at write {stop_at}: the same object"
            );
            assert_eq!(store.open_uploads(), 0, "{name}: no upload left open");
        }
        assert_eq!(
            stopped, writes,
            "{name}: every run was stopped before its end"
        );
        assert!(writes > 10, "{name}: {writes} writes");
    }
}

#[tokio::test]
async fn a_stored_part_without_its_checkpoint_is_read_again_with_every_part_after_it() {
    // Checkpoints are written in any order: a kill can leave part n stored with its checkpoint
    // missing while later parts have theirs. The resume starts after the longest run of parts
    // that all have one, so it never trusts a checkpoint above a gap.
    let options = pipelined(Layout::Blocks);
    let (source, indexes) = jittered();
    let reference = run_on(&source, &MemoryStore::default(), &options, "snap-1", "p/")
        .await
        .expect("acquired");
    for (missing, resumed_parts) in [(1, 0), (2, 1), (3, 2)] {
        let sink = MemoryStore::default();
        sink.stop_at_part(4);
        run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .expect_err("part 4 fails");
        for part in 1..=3 {
            assert!(
                sink.object(&part_key("p/", part)).is_some(),
                "checkpoint {part}"
            );
        }
        sink.remove(&part_key("p/", missing));
        let before = source.gets.load(Ordering::SeqCst);
        let resumed = run_on(&source, &sink, &options, "snap-1", "p/")
            .await
            .unwrap_or_else(|e| panic!("checkpoint {missing} missing: {e}"));
        assert_eq!(
            resumed.resumed_parts, resumed_parts,
            "checkpoint {missing} missing"
        );
        assert_eq!(
            (source.gets.load(Ordering::SeqCst) - before) as u64,
            resumed.fetched_now,
        );
        assert_eq!(
            (
                &resumed.image_sha256,
                &resumed.data_sha256,
                &resumed.block_map_sha256
            ),
            (
                &reference.image_sha256,
                &reference.data_sha256,
                &reference.block_map_sha256
            ),
            "checkpoint {missing} missing"
        );
        assert_eq!(
            sink.object("p/data/blocks.bin").expect("object"),
            expected_object(&source, &indexes)
        );
    }
}

#[tokio::test]
async fn a_checkpoint_that_does_not_describe_the_stored_part_stops_the_block_map() {
    // Checkpoint 1 altered after part 1 was stored (another checksum): the resume trusts
    // checkpoint 3, and the block map, reading checkpoint 1 back, refuses it, naming both.
    let options = pipelined(Layout::Blocks);
    let (source, _) = jittered();
    let sink = MemoryStore::default();
    sink.stop_at_part(4);
    run_on(&source, &sink, &options, "snap-1", "p/")
        .await
        .expect_err("part 4 fails");
    let key = part_key("p/", 1);
    let mut checkpoint: PartCheckpoint =
        serde_json::from_slice(&sink.object(&key).expect("checkpoint 1")).expect("json");
    checkpoint.checksum = forensnap_store::PartAlgorithm::Crc64Nvme.checksum(b"another part");
    sink.put_version(
        &key,
        serde_json::to_vec(&checkpoint).expect("json"),
        "application/json",
    )
    .await
    .expect("altered");
    let err = run_on(&source, &sink, &options, "snap-1", "p/")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("00001.json") && text.contains("but S3 holds part 1"),
        "{text}"
    );
}
