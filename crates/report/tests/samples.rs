//! Reports of synthetic cases of 1 and 12 volumes (long ids, failed steps, a failed check):
//! they render as PDF/A-3b (krilla's validator on), byte for byte the same twice, and every
//! format carries every item and event. With `FORENSNAP_REPORT_SAMPLES=DIR` the PDFs are written
//! there, to look at (`pdftoppm -png DIR/case-12.pdf page`).

use forensnap_core::Event;
use forensnap_report::{PersonMapping, Report, ReportInput, Tool, VerificationMode, tables};
use forensnap_verify::{
    CheckpointFact, Facts, FlaggedAction, ItemFact, ReadEvent, Row, TimelineFact,
};
use serde_json::{Value, json};

const CASE: &str = "IR-2026-0042-PRODUCTION-WEB-TIER-COMPROMISE";
const MEMBER: &str = "111111111111";
const PRINCIPAL: &str =
    "arn:aws:sts::123456789012:assumed-role/forensnap-collector/i-0f00ba5forensnapcollector";

fn hex(seed: &str) -> String {
    forensnap_core::sha256_hex(seed.as_bytes())
}

struct Chain {
    events: Vec<ReadEvent>,
}

impl Chain {
    fn push(&mut self, action: &str, details: Value, error: Option<&str>) {
        let prev = self
            .events
            .last()
            .map_or("0".repeat(64), |e| e.sha256.clone());
        let seq = self.events.len() as u64 + 1;
        let mut details = details;
        details["instance"] = json!("i-0123456789abcdef0");
        details["member_account"] = json!(MEMBER);
        let event: Event = serde_json::from_value(json!({
            "schema": forensnap_core::custody::EVENT_SCHEMA,
            "case": CASE,
            "seq": seq,
            "time": format!("2026-11-23T20:{:02}:{:02}.{:03}Z", 10 + seq / 60, seq % 60, seq * 7 % 1000),
            "action": action,
            "outcome": if error.is_some() { "failed" } else { "ok" },
            "actor": { "arn": PRINCIPAL, "operator": "alice" },
            "purpose": "=HYPERLINK(\"http://x\") ticket SEC-1234, warrant 26-MJ-0042",
            "account": MEMBER,
            "region": "eu-west-1",
            "before": ["vol-0123456789abcdef0"],
            "after": ["snap-0123456789abcdef0"],
            "request_ids": [],
            "details": details,
            "error": error,
            "prev_sha256": prev,
        }))
        .expect("a well-formed event");
        let bytes = event.to_bytes();
        self.events.push(ReadEvent {
            sha256: forensnap_core::sha256_hex(&bytes),
            bytes,
            event,
        });
    }
}

fn case(volumes: usize) -> forensnap_verify::Report {
    let mut chain = Chain { events: Vec::new() };
    chain.push(
        "collection.started",
        json!({"tool": "forensnap 0.1.0", "run": 1, "resumed": false}),
        None,
    );
    chain.push(
        "role.assumed",
        json!({"role_arn": "arn:aws:iam::111111111111:role/ForensnapCollector",
               "session_name": format!("forensnap-{CASE}"), "source_identity": "alice"}),
        None,
    );
    let ids: Vec<String> = (0..volumes)
        .map(|i| format!("vol-0{i:02}3456789abcdef0"))
        .collect();
    chain.push(
        "instance.recorded",
        json!({"availability_zone": "eu-west-1a", "key": format!("cases/{CASE}/evidence/i-0123456789abcdef0-instance-record/data/describe-instances.json"),
               "version_id": "v1", "sha256": hex("record"), "size": 1616}),
        None,
    );
    chain.push(
        "snapshot.completed",
        json!({"volume_id": ids[0], "stage": "original", "snapshot_id": "snap-0aaaaaaaaaaaaaaaa", "final_state": "error"}),
        Some("the snapshot ended in state error: the next run makes it anew"),
    );
    chain.push(
        "preservation.completed",
        json!({"volumes": ids.iter().enumerate().map(|(i, v)| json!({
            "device": format!("/dev/xvd{}", (b'a' + i as u8) as char), "volume_id": v,
            "member_snapshot_id": format!("snap-0{i:02}member0000000"),
            "snapshot_id": format!("snap-0{i:02}forensic000000"),
            "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"})).collect::<Vec<_>>()}),
        None,
    );
    for (i, v) in ids.iter().enumerate() {
        chain.push(
            "acquisition.started",
            json!({"item": v, "volume_id": v, "layout": "blocks"}),
            None,
        );
        chain.push(
            "acquisition.completed",
            json!({"item": v, "volume_id": v, "key": format!("cases/{CASE}/evidence/{v}/data/blocks.bin"),
                   "version_id": format!("ver{i}"), "image_sha256": hex(&format!("image{i}")),
                   "data_sha256": hex(&format!("data{i}")), "composite_sha256": null,
                   "block_map_sha256": hex(&format!("map{i}")), "blocks_stored": 2000 + i,
                   "aws_checksums_matched": 2000 + i, "answers_discarded": i % 3, "resumed_parts": 0}),
            None,
        );
        chain.push(
            "evidence.sealed",
            json!({"item": v, "kind": "volume", "prefix": format!("cases/{CASE}/evidence/{v}/"),
                   "payload_sha256": [["data/blocks.bin", hex(&format!("data{i}"))],
                                      ["data/blockmap.tsv", hex(&format!("map{i}"))]]}),
            None,
        );
    }
    chain.push("collection.completed", json!({"evidence": []}), None);
    let mut rows = vec![Row {
        check: "custody chain".into(),
        subject: format!("{} events", chain.events.len()),
        ok: true,
        detail: "each event links to the previous one's SHA-256".into(),
    }];
    let mut items = std::collections::BTreeMap::new();
    for (i, v) in ids.iter().enumerate() {
        rows.push(Row {
            check: "payload".into(),
            subject: format!("{v} image"),
            ok: i != 1,
            detail: if i == 1 {
                format!(
                    "block 7 of data/blocks.bin has sha256 {} where the block map records {}",
                    hex("x"),
                    hex("y")
                )
            } else {
                format!("image sha256 {}", hex(&format!("image{i}")))
            },
        });
        items.insert(
            v.clone(),
            ItemFact {
                tagmanifest_sha256: Some(hex(&format!("tags{i}"))),
                signature_verified: true,
                payload_verified: i != 1,
                image_sha256: (i != 1).then(|| hex(&format!("image{i}"))),
                volume_bytes: Some(8 << 30),
                blocks_checked: Some(2000 + i as u64),
                memory: None,
            },
        );
    }
    forensnap_verify::Report {
        case: CASE.into(),
        public_key_sha256: hex("key"),
        events: chain.events.len(),
        checkpoints: 1,
        items: ids.len(),
        objects_locked: 0,
        rows,
        facts: Facts {
            checkpoints: vec![CheckpointFact {
                number: 1,
                time: "2026-11-23T21:00:00.000Z".into(),
                key: format!("cases/{CASE}/custody/checkpoints/000001.json"),
                sha256: hex("checkpoint"),
                chain_seq: chain.events.len() as u64,
                signing_key_arn:
                    "arn:aws:kms:eu-west-1:123456789012:key/abcd1234-12ab-34cd-56ef-1234567890ab"
                        .into(),
                public_key_sha256: hex("key"),
                signature_verified: true,
            }],
            events: chain.events,
            items,
            locks: Vec::new(),
            timelines: [(
                "cloudtrail-events-i-0abc".to_string(),
                TimelineFact {
                    start: "2026-11-16T21:00:00Z".into(),
                    end: "2026-11-23T21:00:00Z".into(),
                    rows: 42,
                    flagged: vec![FlaggedAction {
                        time: "2026-11-23T19:05:00Z".into(),
                        principal: "arn:aws:sts::111122223333:assumed-role/web-1-role/i-0abc"
                            .into(),
                        action: "iam:CreateAccessKey".into(),
                        flag: "persistence".into(),
                        why: "new access key".into(),
                        source_ip: "203.0.113.50".into(),
                        error_code: None,
                    }],
                },
            )]
            .into(),
        },
    }
}

fn report(verification: &forensnap_verify::Report) -> Report {
    Report::build(&ReportInput {
        verification,
        mode: VerificationMode::Offline,
        matter: Some(
            "Example Corp. v. Unknown Intruder, No. 26-cv-00042 (internal investigation)".into(),
        ),
        organisation: Some("Example Corp. Security Operations".into()),
        personnel: vec![PersonMapping {
            principal: "alice".into(),
            name: "Alice Example-Responder".into(),
            role: Some("Incident responder".into()),
            contact: Some("alice@example.com".into()),
        }],
        generated_at: time::macros::datetime!(2026-11-24 09:00:00 UTC),
        tool: Tool {
            name: "forensnap".into(),
            version: "0.1.0".into(),
            build: format!("executable sha256 {}", hex("binary")),
        },
        public_key_pem: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n".into(),
        bucket: None,
    })
}

#[test]
fn one_and_twelve_volume_cases_render_the_same_bytes_twice_and_carry_everything() {
    let samples = std::env::var_os("FORENSNAP_REPORT_SAMPLES");
    for volumes in [1, 12] {
        let verification = case(volumes);
        let built = report(&verification);
        let pdf = built.pdf().expect("renders as PDF/A-3b");
        assert_eq!(
            pdf,
            report(&verification).pdf().expect("again"),
            "deterministic"
        );
        assert!(pdf.starts_with(b"%PDF-1.7"));
        let r = &built.report;
        assert_eq!(
            r.items.len(),
            volumes + 1,
            "volumes and the instance record"
        );
        assert_eq!(r.events.len(), verification.facts.events.len());
        assert_eq!(
            r.verification.result,
            if volumes > 1 { "fail" } else { "pass" }
        );
        assert!(
            r.gaps.iter().any(|g| g.what.contains("state error")),
            "{:?}",
            r.gaps
        );
        let items = String::from_utf8(tables::items_csv(r)).expect("utf-8");
        assert_eq!(
            items.split("\r\n").filter(|l| !l.is_empty()).count(),
            volumes + 2
        );
        let events = String::from_utf8(tables::events_csv(r)).expect("utf-8");
        assert!(events.contains("'=HYPERLINK"), "the formula is defused");
        assert!(!events.contains(",=HYPERLINK"));
        let jsonl = &built
            .attachment(forensnap_report::EVENTS_JSONL)
            .expect("jsonl")
            .bytes;
        for (line, read) in jsonl
            .split_inclusive(|b| *b == b'\n')
            .zip(&verification.facts.events)
        {
            assert_eq!(
                forensnap_core::sha256_hex(line),
                read.sha256,
                "each line is the stored event"
            );
        }
        if let Some(dir) = &samples {
            std::fs::create_dir_all(dir).expect("samples folder");
            std::fs::write(
                std::path::Path::new(dir).join(format!("case-{volumes}.pdf")),
                &pdf,
            )
            .expect("write sample");
        }
    }
}
