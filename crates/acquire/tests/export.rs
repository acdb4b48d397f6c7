//! Export of sealed volume items (`forensnap_evidence::export`) on items the engine really
//! acquired: both layouts back to the raw image, a tampered block named, an edited bag-info caught.
//! Here rather than in `forensnap-evidence` because the fixture is made by the engine.
use std::path::PathBuf;

use forensnap_acquire::memory::MemorySource;
use forensnap_acquire::{AcquireOptions, AdaptiveLimit, acquire};
use forensnap_core::layout::{BLOCK_SIZE, Layout};
use forensnap_evidence::export::export;
use forensnap_evidence::item::{self, seal_volume};
use forensnap_evidence::progress::NoProgress;
use forensnap_store::MemoryStore;
use sha2::{Digest, Sha256};

async fn sealed_item(layout: Layout, indexes: &[u64]) -> (MemorySource, MemoryStore) {
    let source = MemorySource::pattern(BLOCK_SIZE, 64, indexes);
    let sink = MemoryStore::default();
    let limit = AdaptiveLimit::new(4, 8, 100_000.0);
    let options = AcquireOptions {
        layout,
        ..AcquireOptions::default()
    };
    let got = acquire(
        &source,
        &sink,
        &limit,
        &options,
        "snap-1",
        "i/",
        &NoProgress,
    )
    .await
    .expect("acquired");
    let signer = forensnap_core::seal::MemorySigner::from_seed(7, "arn:aws:kms:test:1:key/k");
    let guide = item::Guide {
        id: "vol-1",
        case: "C-1",
        kind: item::ItemKind::Volume,
    };
    seal_volume(
        &sink,
        "i/",
        &got,
        &[("Case-Id".into(), "C-1".into())],
        &signer,
        guide,
    )
    .await
    .expect("sealed");
    (source, sink)
}

#[tokio::test]
async fn both_layouts_export_the_raw_image_and_a_tampered_block_is_named() {
    let dir = std::env::temp_dir().join(format!("forensnap-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for layout in [Layout::Blocks, Layout::Raw] {
        let (source, sink) = sealed_item(layout, &[0, 5, 6, 63]).await;
        let out = dir.join(format!("{}.raw", layout.as_str()));
        let got = export(&sink, "i/", &out, &NoProgress)
            .await
            .expect("exported");
        let image = source.raw_image();
        assert_eq!(std::fs::read(&out).expect("image"), image);
        assert_eq!(got.image_sha256, hex::encode(Sha256::digest(&image)));
        assert_eq!(got.blocks_checked, 4);
        let again = export(&sink, "i/", &out, &NoProgress)
            .await
            .expect_err("exists");
        assert!(again.to_string().contains("already exists"), "{again}");

        // One flipped byte in block 6.
        let key = format!("i/{}", layout.data_path());
        let mut data = sink.object(&key).expect("data");
        let at = match layout {
            Layout::Blocks => 2 * BLOCK_SIZE as usize + 7,
            Layout::Raw => 6 * BLOCK_SIZE as usize + 7,
        };
        data[at] ^= 1;
        sink.replace(&key, data);
        let tampered = dir.join(format!("{}-tampered.raw", layout.as_str()));
        let err = export(&sink, "i/", &tampered, &NoProgress)
            .await
            .expect_err("tampering is caught");
        assert!(
            err.to_string()
                .contains(&format!("{} block 6", layout.data_path())),
            "{err}"
        );
        assert!(!tampered.exists(), "no unverified image left behind");
        assert!(!PathBuf::from(format!("{}.partial", tampered.display())).exists());
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn an_edited_bag_info_is_caught_by_the_tag_manifest() {
    let (_, sink) = sealed_item(Layout::Blocks, &[1]).await;
    let info = String::from_utf8(sink.object("i/bag-info.txt").expect("info")).expect("utf8");
    sink.replace(
        "i/bag-info.txt",
        info.replace("Case-Id: C-1", "Case-Id: C-2").into_bytes(),
    );
    let out =
        std::env::temp_dir().join(format!("forensnap-export-info-{}.raw", std::process::id()));
    let err = export(&sink, "i/", &out, &NoProgress)
        .await
        .expect_err("caught");
    assert!(
        err.to_string().contains("bag-info.txt") && err.to_string().contains("SHA-256"),
        "{err}"
    );
    assert!(!out.exists());
}
