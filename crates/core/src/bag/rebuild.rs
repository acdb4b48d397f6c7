//! `rebuild.sh`, the script in every "blocks" bag that rebuilds the raw image from the stored
//! blocks: [`rebuild_script`] fills the per-volume values into the template `bag/rebuild.sh`, a
//! real shell file (checked by shellcheck in scripts/test). Its output is pinned byte for byte:
//! bags already stored carry it and auditors compare it.

use super::shell::shell_quote;

/// The script with `@NAME@` placeholders for the per-volume values, which [`rebuild_script`]
/// fills in. Everything else, comments included, is written to every bag as it stands.
const TEMPLATE: &str = include_str!("rebuild.sh");

/// `rebuild.sh`: a POSIX `sh` script (dash is enough) that needs only `dd` to rebuild the raw
/// image of a volume stored in the "blocks" layout: `data_object` holds the stored blocks,
/// `block_map` is the [`crate::layout::BlockMapEntry`] text. Run from the bag root:
///
/// * `sh rebuild.sh disk.raw` writes a sparse file of exactly `volume_bytes` bytes, one `dd` per
///   run of consecutive stored blocks (a 100 GiB volume has up to 200k blocks; a `dd` each
///   would take hours), then `sha256sum -c data/image.sha256` checks it;
/// * `sh rebuild.sh -` (or `stream`) writes the image to stdout, zeros included, so
///   `sh rebuild.sh - | sha256sum` needs no disk space.
///
/// The script refuses (non-zero exit, message naming the map line) a map line whose offset is
/// not `index * BLOCK_SIZE`, whose length is not `BLOCK_SIZE`, whose object offset is not a
/// multiple of `BLOCK_SIZE`, whose index does not increase or lies beyond the volume, and a
/// `dd` that did not read every block it was asked for (a truncated blocks object).
pub fn rebuild_script(
    volume_bytes: u64,
    data_object: &str,
    block_map: &str,
    image_sha256: &str,
) -> String {
    // Caller-given strings only ever appear single-quoted in code, never in comments, so no
    // value can break out of its assignment.
    fill(
        TEMPLATE,
        &[
            ("VOLUME_BYTES", volume_bytes.to_string()),
            ("IMAGE_SHA256", shell_quote(image_sha256)),
            ("DATA", shell_quote(data_object)),
            ("MAP", shell_quote(block_map)),
        ],
    )
}

/// `template` with every `@NAME@` of `values` replaced by its value, in one left-to-right pass:
/// a filled-in value is never scanned again, so one that contains `@MAP@` stays as given. Any
/// other '@' (the script's `"$@"`) is kept.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut filled = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        filled.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let placeholder = values.iter().find_map(|(name, value)| {
            let tail = after.strip_prefix(name)?.strip_prefix('@')?;
            Some((value, tail))
        });
        match placeholder {
            Some((value, tail)) => {
                filled.push_str(value);
                rest = tail;
            }
            None => {
                filled.push('@');
                rest = after;
            }
        }
    }
    filled.push_str(rest);
    filled
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use super::*;
    use crate::bag::fixtures::{DATA, MAP, Scratch, block_bytes, text, write_bag};
    use crate::bag::shell::require_program;
    use crate::bag::{IMAGE_NAME, REBUILD_SCRIPT_PATH};
    use crate::custody::sha256_hex;
    use crate::layout::{BLOCK_SIZE, IMAGE_SHA256_PATH};

    // ---- the script's bytes ----

    /// SHA-256 and length of `rebuild_script`'s output for several inputs, captured from the
    /// implementation that wrote bags before the script became a template file (a `format!`
    /// string in bag.rs, commit 7f4e8c8). Bags already in S3 carry these bytes and auditors
    /// compare them: a change here is a new script version, never an edit.
    #[test]
    fn rebuild_script_bytes_are_pinned() {
        let pinned: [(u64, &str, &str, &str, &str, usize); 5] = [
            (
                8 << 30,
                DATA,
                MAP,
                "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea",
                "b8171663ac8734d41d79d0bda45693d32bfbac7bea7ad2639e2539c073a03ed0",
                7659,
            ),
            (
                BLOCK_SIZE,
                "data/it's $(x).bin",
                MAP,
                "'; rm -rf /; '",
                "6ca0e945fe41d0a39c7a75ad363289b98c098d363b455b0502bc94cbb181e132",
                7617,
            ),
            (
                0,
                "",
                "",
                "",
                "4df3867d2925841c73acc5e50b78e1d439540664240a09a248e2ef08ed87bbe9",
                7554,
            ),
            (
                u64::MAX,
                "data/@MAP@ \"q\" \\ `x` $HOME\n!*?.bin",
                "@DATA@",
                "@VOLUME_BYTES@ @IMAGE_SHA256@",
                "9466dca3ba6a7d2a5dab6aa2902ac875b2a3406d75b8c465c892dd052cbc5d1a",
                7642,
            ),
            (
                5 * BLOCK_SIZE + 4096,
                DATA,
                MAP,
                "tab\there",
                "25a3b0e5dc49f86f9f785b52bd214fe61d9e66f1fbc0cd7bd7e57fb96f67d6f3",
                7600,
            ),
        ];
        for (volume_bytes, data, map, image_sha256, sha256, len) in pinned {
            let script = rebuild_script(volume_bytes, data, map, image_sha256);
            assert_eq!(
                (sha256_hex(script.as_bytes()).as_str(), script.len()),
                (sha256, len),
                "rebuild.sh for {:?} is not the pinned script:\n{script}",
                (volume_bytes, data, map, image_sha256)
            );
        }
    }

    #[test]
    fn the_template_has_each_placeholder_once_and_agrees_with_the_constants() {
        let names = ["VOLUME_BYTES", "IMAGE_SHA256", "DATA", "MAP"];
        // No other `@NAME@` that rebuild_script would leave unfilled.
        for (at, _) in TEMPLATE.match_indices('@') {
            let name: String = TEMPLATE[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if !name.is_empty() && TEMPLATE[at + 1 + name.len()..].starts_with('@') {
                assert!(
                    names.contains(&name.as_str()),
                    "unknown placeholder @{name}@"
                );
            }
        }
        for name in names {
            let placeholder = format!("@{name}@");
            assert_eq!(TEMPLATE.matches(&placeholder).count(), 1, "{placeholder}");
            assert!(
                TEMPLATE.contains(&format!("\n{name}={placeholder}\n")),
                "{placeholder} is the value of an assignment"
            );
        }
        let script = rebuild_script(8 << 30, DATA, MAP, &"ab".repeat(32));
        assert!(!script.contains("@VOLUME_BYTES@") && !script.contains("@IMAGE_SHA256@"));
        assert!(!script.contains("@DATA@") && !script.contains("@MAP@"));
        assert!(script.contains("\nVOLUME_BYTES=8589934592\n"), "{script}");
        assert!(script.contains("\nDATA='data/blocks.bin'\n"), "{script}");
        // The volume-independent values are written out in the template; they must be the
        // constants the rest of forensnap uses.
        for needed in [
            format!("\nBLOCK_SIZE={BLOCK_SIZE}\n"),
            format!("\nCHECK={}\n", shell_quote(IMAGE_SHA256_PATH)),
            format!("\nIMAGE_NAME={}\n", shell_quote(IMAGE_NAME)),
            format!("the {BLOCK_SIZE}-byte blocks"),
            format!("`sha256sum -c {IMAGE_SHA256_PATH}`"),
            format!("names the image {IMAGE_NAME}.\n"),
        ] {
            assert!(TEMPLATE.contains(&needed), "the template lacks {needed:?}");
        }
    }

    #[test]
    fn fill_replaces_placeholders_in_one_pass() {
        let values = [("A", "@B@".to_string()), ("B", "b".to_string())];
        assert_eq!(fill("x=@A@ y=@B@", &values), "x=@B@ y=b");
        assert_eq!(
            fill("\"$@\" @C@ @A @@ a@b", &values),
            "\"$@\" @C@ @A @@ a@b"
        );
        assert_eq!(fill("@A@@B@@", &values), "@B@b@");
        assert_eq!(fill("", &values), "");
    }

    // ---- rebuild.sh, really executed ----

    /// dash, the strictest common sh (Debian's /bin/sh): the script must run on it, with the dd
    /// it needs.
    fn shell() -> PathBuf {
        require_program("dd", "coreutils");
        require_program("dash", "dash")
    }

    fn run(dir: &Path, args: &[&str]) -> Output {
        Command::new(shell())
            .arg(REBUILD_SCRIPT_PATH)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run the shell")
    }

    /// Rebuilds to a file and to stdout and checks both against `image`.
    fn assert_rebuilds(dir: &Path, image: &[u8]) {
        let file = run(dir, &["disk.raw"]);
        assert!(file.status.success(), "stderr: {}", text(&file.stderr));
        assert!(text(&file.stdout).contains("sha256sum -c data/image.sha256"));
        let rebuilt = std::fs::read(dir.join("disk.raw")).expect("disk.raw written");
        assert_eq!(rebuilt.len(), image.len());
        assert!(rebuilt == image, "disk.raw differs from the volume");

        let stream = run(dir, &["-"]);
        assert!(stream.status.success(), "stderr: {}", text(&stream.stderr));
        assert_eq!(stream.stdout.len(), image.len());
        assert!(stream.stdout == image, "streamed image differs");

        let check = Command::new(require_program("sha256sum", "coreutils"))
            .args(["-c", IMAGE_SHA256_PATH])
            .current_dir(dir)
            .output()
            .expect("run sha256sum");
        assert!(check.status.success(), "{}", text(&check.stdout));
    }

    #[test]
    fn rebuild_script_rebuilds_scattered_blocks_byte_for_byte() {
        let scratch = Scratch::new("scattered");
        let image = write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        assert_rebuilds(&scratch.0, &image);
        let stream = run(&scratch.0, &["stream"]);
        assert!(stream.status.success() && stream.stdout == image);
    }

    #[test]
    fn rebuild_script_rebuilds_a_volume_whose_only_data_is_its_last_block() {
        let scratch = Scratch::new("last");
        let image = write_bag(&scratch.0, 16 * BLOCK_SIZE, &[15]);
        assert_rebuilds(&scratch.0, &image);
    }

    #[test]
    fn rebuild_script_rebuilds_an_all_zero_volume_without_a_blocks_object() {
        let scratch = Scratch::new("zeros");
        let image = write_bag(&scratch.0, 8 * BLOCK_SIZE, &[]);
        assert!(image.iter().all(|&b| b == 0));
        // With nothing stored there may be no object at all; the script must not need it.
        std::fs::remove_file(scratch.0.join(DATA)).expect("remove blocks.bin");
        assert_rebuilds(&scratch.0, &image);
    }

    #[test]
    fn rebuild_script_handles_a_volume_that_is_not_whole_blocks() {
        // Not an EBS shape, but the script must still give exactly VOLUME_BYTES bytes.
        let scratch = Scratch::new("tail");
        let image = write_bag(&scratch.0, 5 * BLOCK_SIZE + 4096, &[1, 4, 5]);
        assert_rebuilds(&scratch.0, &image);
        let scratch = Scratch::new("tail-zero");
        let image = write_bag(&scratch.0, 5 * BLOCK_SIZE + 512, &[0, 1]);
        assert_rebuilds(&scratch.0, &image);
    }

    #[cfg(unix)]
    #[test]
    fn rebuild_script_runs_one_dd_per_run_of_consecutive_blocks() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("runs");
        let image = write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        let real_dd = require_program("dd", "coreutils");
        let bin = scratch.0.join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let wrapper = bin.join("dd");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$DD_LOG\"\nexec {} \"$@\"\n",
                real_dd.display()
            ),
        )
        .expect("write dd wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let log = scratch.0.join("dd.log");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new(shell())
            .args([REBUILD_SCRIPT_PATH, "disk.raw"])
            .current_dir(&scratch.0)
            .env("PATH", path)
            .env("DD_LOG", &log)
            .output()
            .expect("run the shell");
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(std::fs::read(scratch.0.join("disk.raw")).expect("written") == image);
        let calls = std::fs::read_to_string(&log).expect("dd log");
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(
            calls,
            [
                "if=data/blocks.bin of=disk.raw bs=524288 skip=0 seek=0 count=3 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=3 seek=10 count=2 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=5 seek=40 count=1 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=6 seek=63 count=1 conv=notrunc",
                "if=/dev/null of=disk.raw bs=1 seek=33554432",
            ]
        );
    }

    /// Replaces line `line` (1-based, header included) of the block map.
    fn corrupt_map(dir: &Path, line: usize, replacement: &str) {
        let map = std::fs::read_to_string(dir.join(MAP)).expect("read map");
        let mut lines: Vec<String> = map.lines().map(str::to_string).collect();
        lines[line - 1] = replacement.to_string();
        std::fs::write(dir.join(MAP), lines.join("\n") + "\n").expect("write map");
    }

    fn assert_refused(dir: &Path, words: &str) {
        for args in [["disk.raw"], ["-"]] {
            let output = run(dir, &args);
            assert!(!output.status.success(), "{args:?} succeeded");
            let stderr = text(&output.stderr);
            assert!(stderr.contains(words), "{args:?}: {stderr}");
        }
    }

    #[test]
    fn rebuild_script_refuses_a_corrupted_block_map() {
        let line = |index: u64, offset: u64, object_offset: u64| {
            format!("{index}\t{offset}\t{BLOCK_SIZE}\t{object_offset}\tab\tq83v")
        };
        let cases = [
            // offset not index * BLOCK_SIZE
            (
                line(10, 10 * BLOCK_SIZE + 1, 3 * BLOCK_SIZE),
                "line 5: offset",
            ),
            // index going backwards
            (
                line(1, BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: index 1 does not follow",
            ),
            // repeated index
            (
                line(2, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: index 2 does not follow",
            ),
            // object offset inside a block
            (
                line(10, 10 * BLOCK_SIZE, 3 * BLOCK_SIZE + 7),
                "line 5: object_offset",
            ),
            // beyond the volume
            (
                line(64, 64 * BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: block 64 lies beyond",
            ),
            // octal trap and garbage
            (
                "010\t5242880\t524288\t0\tab\tq83v".to_string(),
                "leading zero",
            ),
            (
                "x\t0\t524288\t0\tab\tq83v".to_string(),
                "line 5: index is not a decimal",
            ),
            ("10\t5242880".to_string(), "line 5: length is not a decimal"),
        ];
        for (replacement, words) in cases {
            let scratch = Scratch::new("corrupt");
            write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
            corrupt_map(&scratch.0, 5, &replacement);
            assert_refused(&scratch.0, words);
            let stderr = text(&run(&scratch.0, &["disk.raw"]).stderr);
            assert!(stderr.contains("disk.raw is incomplete"), "{stderr}");
        }
    }

    #[test]
    fn rebuild_script_refuses_a_truncated_blocks_object() {
        let scratch = Scratch::new("short");
        write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        let blocks = std::fs::read(scratch.0.join(DATA)).expect("read blocks");
        let short = blocks.len() - 100;
        std::fs::write(scratch.0.join(DATA), &blocks[..short]).expect("truncate");
        assert_refused(&scratch.0, "did not read 1 whole blocks");
    }

    #[test]
    fn rebuild_script_refuses_bad_invocations() {
        let scratch = Scratch::new("usage");
        write_bag(&scratch.0, 4 * BLOCK_SIZE, &[1]);
        let none = run(&scratch.0, &[]);
        assert!(!none.status.success() && text(&none.stderr).contains("usage"));
        let device = run(&scratch.0, &["/dev/null"]);
        assert!(!device.status.success());
        assert!(text(&device.stderr).contains("not a regular file"));
        let into_payload = run(&scratch.0, &["data/blocks.bin"]);
        assert!(!into_payload.status.success());
        assert!(text(&into_payload.stderr).contains("payload"));
        assert_eq!(
            std::fs::read(scratch.0.join(DATA)).expect("still there"),
            block_bytes(1),
            "the payload is untouched"
        );
        let elsewhere = Command::new(shell())
            .arg(scratch.0.join(REBUILD_SCRIPT_PATH))
            .arg("disk.raw")
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run the shell");
        assert!(!elsewhere.status.success());
        assert!(text(&elsewhere.stderr).contains("bag root"));
    }

    #[test]
    fn rebuild_script_quotes_what_it_embeds() {
        let script = rebuild_script(BLOCK_SIZE, "data/it's $(x).bin", MAP, "'; rm -rf /; '");
        assert!(
            script.contains(r#"DATA='data/it'\''s $(x).bin'"#),
            "{script}"
        );
        assert!(
            script.contains(r#"IMAGE_SHA256=''\''; rm -rf /; '\'''"#),
            "{script}"
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("\nset -eu\n"));
        let scratch = Scratch::new("syntax");
        std::fs::write(scratch.0.join(REBUILD_SCRIPT_PATH), &script).expect("write");
        let check = Command::new(shell())
            .args(["-n", REBUILD_SCRIPT_PATH])
            .current_dir(&scratch.0)
            .output()
            .expect("run the shell");
        assert!(check.status.success(), "{}", text(&check.stderr));
    }
}
