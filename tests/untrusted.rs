//! Untrusted files: `forensnap verify --offline` (and `report --offline`) reads a case folder an adversary may have
//! crafted. Starting from the checked-in case (`tests/fixtures/case-before-store`, the corpus),
//! each round changes one file at random (bit flips, truncation, garbage, a megabyte-long line,
//! lines duplicated or dropped, a file made a folder, a file made a symbolic link to an
//! identical copy outside the case) and runs `verify --offline`. Every round must end without
//! a panic, and every change to a file the verifier covers (custody events and checkpoints,
//! every bag file) must fail verification: a symbolic link whose target is byte-identical would
//! pass if the verifier followed it out of the folder.
//!
//! Rounds are chosen by a seeded generator: `FORENSNAP_FUZZ_SEED` (default fixed) and
//! `FORENSNAP_FUZZ_ROUNDS` (default 60) reproduce or lengthen a run; a failure names the seed
//! and the round.

use std::path::{Path, PathBuf};
use std::process::Command;

use forensnap_tests::{copy_dir, forensnap_bin, relative_files, summary};

const CASE: &str = "IR-COMPAT-1";

/// A small deterministic generator (xorshift64*): the rounds are reproducible from the seed
/// without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/case-before-store")
}

/// Files whose change the verifier must catch: the custody chain and its signed heads, and
/// every file of every bag. (Resume state under `acquisition/` is not evidence.)
fn covered(file: &str) -> bool {
    !file.contains("/acquisition/")
}

/// One change to `path`; returns what was done.
fn mutate(rng: &mut Rng, path: &Path, outside: &Path) -> String {
    let mut bytes = std::fs::read(path).expect("read");
    let len = bytes.len();
    match rng.below(9) {
        0 if len > 0 => {
            let at = rng.below(len);
            let bit = 1u8 << rng.below(8);
            bytes[at] ^= bit;
            std::fs::write(path, &bytes).expect("write");
            format!("bit {bit:#04x} of byte {at} flipped")
        }
        1 => {
            let keep = rng.below(len);
            bytes.truncate(keep);
            std::fs::write(path, &bytes).expect("write");
            format!("truncated to {keep} of {len} bytes")
        }
        2 => {
            let n = 1 + rng.below(4096);
            bytes.extend((0..n).map(|_| rng.next() as u8));
            std::fs::write(path, &bytes).expect("write");
            format!("{n} random bytes appended")
        }
        3 => {
            let at = rng.below(len + 1);
            let line = vec![b'a'; 1 << 20];
            bytes.splice(at..at, line);
            std::fs::write(path, &bytes).expect("write");
            format!("a line of 1 MiB inserted at {at}")
        }
        4 => {
            let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
            if lines.len() < 2 {
                bytes.clear();
                std::fs::write(path, &bytes).expect("write");
                return "emptied".into();
            }
            let at = rng.below(lines.len());
            let mut out = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                out.extend_from_slice(line);
                if i == at {
                    out.extend_from_slice(line);
                }
            }
            std::fs::write(path, &out).expect("write");
            format!("line {at} duplicated")
        }
        5 => {
            let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
            let at = rng.below(lines.len());
            let out: Vec<u8> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            std::fs::write(path, &out).expect("write");
            format!("line {at} of {} dropped", lines.len())
        }
        6 => {
            let garbage: Vec<u8> = (0..len.max(1)).map(|_| rng.next() as u8 | 0x80).collect();
            std::fs::write(path, &garbage).expect("write");
            "replaced by non-UTF-8 garbage".into()
        }
        7 => {
            std::fs::remove_file(path).expect("remove");
            std::fs::create_dir(path).expect("folder");
            "replaced by a folder".into()
        }
        _ => {
            // The same bytes, outside the case folder, linked from inside it.
            let target = outside.join(format!("copy-{}", rng.next()));
            std::fs::write(&target, &bytes).expect("copy outside");
            std::fs::remove_file(path).expect("remove");
            std::os::unix::fs::symlink(&target, path).expect("symlink");
            "replaced by a symbolic link to an identical copy outside the case".into()
        }
    }
}

#[test]
fn crafted_case_folders_never_crash_verify_and_never_pass_it() {
    let seed: u64 = std::env::var("FORENSNAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F0E5_2026_1201);
    let rounds: usize = std::env::var("FORENSNAP_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let original = fixture();
    let all: Vec<String> = relative_files(&original).into_iter().collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    let mut rng = Rng(seed | 1);
    let (mut refused, mut survived, mut uncovered, mut reports_failed) = (0, 0, 0, 0);
    for round in 0..rounds {
        let dir = tmp.path().join(format!("round-{round}"));
        copy_dir(&original, &dir);
        let file = &all[rng.below(all.len())];
        let what = mutate(&mut rng, &dir.join(file), &outside);
        let out = Command::new(forensnap_bin())
            .args(["verify", "--offline"])
            .arg(&dir)
            .args(["--case", CASE, "--output", "json"])
            .output()
            .expect("run forensnap");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let context = format!(
            "seed {seed} round {round}: {file}: {what}\nstdout: {}\nstderr: {}",
            stdout.chars().take(2000).collect::<String>(),
            stderr.chars().take(2000).collect::<String>()
        );
        assert!(
            out.status.code() != Some(101) && !stderr.contains("panicked"),
            "verify panicked: {context}"
        );
        assert!(
            out.status.code().is_some(),
            "verify was killed by a signal: {context}"
        );
        if covered(file) {
            assert!(!out.status.success(), "a changed file passed: {context}");
            refused += 1;
        } else {
            uncovered += 1;
        }
        // `report --offline` reads the same folder: JSON every round, the PDF every sixth (the
        // PDF writer is slow in a debug build). It must not crash, and a report of a changed
        // case must say it failed.
        let format = if round % 6 == 0 { "pdf" } else { "json" };
        let written = tmp.path().join(format!("report-{round}.{format}"));
        let run = Command::new(forensnap_bin())
            .args(["report", "--offline"])
            .arg(&dir)
            .args(["--case", CASE, "--format", format, "--out"])
            .arg(&written)
            .env("SOURCE_DATE_EPOCH", "1795000000")
            .output()
            .expect("run forensnap report");
        let report_err = String::from_utf8_lossy(&run.stderr);
        let context = format!(
            "{context}\nreport stderr: {}",
            report_err.chars().take(2000).collect::<String>()
        );
        assert!(
            run.status.code().is_some()
                && run.status.code() != Some(101)
                && !report_err.contains("panicked"),
            "report crashed: {context}"
        );
        if covered(file) {
            assert!(
                !run.status.success(),
                "a report of a changed case passed: {context}"
            );
            if format == "json" && written.exists() {
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&written).expect("report"))
                        .expect("json");
                assert_eq!(json["verification"]["result"], "fail", "{context}");
            }
            if written.exists() {
                reports_failed += 1;
            }
        }
        std::fs::remove_file(&written).ok();
        survived += 1;
        std::fs::remove_dir_all(&dir).ok();
    }
    summary(
        "untrusted",
        &format!(
            "untrusted files: {rounds} crafted case folders (seed {seed}), {survived} without a crash, \
         {refused} changes to covered files refused, {uncovered} changes to resume state only checked for crashes; \
         report --offline on each without a crash, {reports_failed} reports written saying FAILED (the rest refused before writing)"
        ),
    );
}
