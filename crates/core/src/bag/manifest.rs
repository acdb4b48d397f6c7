//! Manifests in sha256sum's text format: the payload and tag manifests ([`manifest`], parsed
//! back by [`parse_manifest`], which also reads sha256sum's and bagit-python's variants) and
//! the one-line `data/image.sha256` ([`sha256sum_line`]); with RFC 8493's percent-encoding of
//! CR, LF and '%' in manifest paths.

use std::collections::BTreeSet;

use super::paths::{check_distinct, check_path};
use super::{BagError, lines};

/// Manifest text: `<hex>  <path>\n` per file, sorted by path, with CR, LF and '%' in paths
/// percent-encoded as RFC 8493 requires (`sha256sum -c` does not decode them, so forensnap's
/// own payload names avoid those characters).
///
/// Every path must be a valid bag path (relative, '/'-separated, no `.`/`..` or empty
/// components), listed once, and every hex digest 64 lowercase hex characters.
pub fn manifest(entries: &[(String, String)]) -> Result<String, BagError> {
    for (path, hex) in entries {
        check_path(path)?;
        if !is_sha256_hex(hex) {
            return Err(BagError::InvalidDigest {
                path: path.clone(),
                digest: hex.clone(),
            });
        }
    }
    check_distinct(entries.iter().map(|(path, _)| path.as_str()))?;
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort();
    Ok(sorted
        .into_iter()
        .map(|(path, hex)| format!("{hex}  {}\n", encode_path(path)))
        .collect())
}

/// Parse a manifest written by [`manifest`] or by `sha256sum` (`<hex>  <path>`, also the binary
/// marker `<hex> *<path>` and bagit-python's single space `<hex> <path>`; LF or CRLF line ends;
/// blank lines skipped). Returns `(path, hex)` in file order, paths percent-decoded and hex
/// lowercased; refuses invalid paths and paths listed twice. Errors name the 1-based line.
pub fn parse_manifest(text: &str) -> Result<Vec<(String, String)>, BagError> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    for (number, line) in lines(text) {
        if line.is_empty() {
            continue;
        }
        let error = |reason: String| BagError::ManifestLine {
            line: number,
            reason,
        };
        let (hex, rest) = line
            .split_once([' ', '\t'])
            .ok_or_else(|| error("expected `<sha256 hex>  <path>`".to_string()))?;
        let hex = hex.to_ascii_lowercase();
        if !is_sha256_hex(&hex) {
            return Err(error(format!(
                "{hex:?} is not a SHA-256 of 64 hex characters"
            )));
        }
        // sha256sum: one separator, then ' ' (text mode) or '*' (binary mode) before the name.
        let encoded = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .unwrap_or(rest);
        let path = decode_path(encoded);
        check_path(&path).map_err(|e| error(e.to_string()))?;
        if !seen.insert(path.clone()) {
            return Err(error(format!("path {path:?} is listed twice")));
        }
        entries.push((path, hex));
    }
    Ok(entries)
}

/// `<hex>  <name>\n`, the line `sha256sum -c` checks (stored as `data/image.sha256` naming
/// [`IMAGE_NAME`](super::IMAGE_NAME)). A name with '\\' or LF is escaped as sha256sum itself
/// does (line starts with '\\', `\\` and `\n` in the name).
pub fn sha256sum_line(hex: &str, name: &str) -> String {
    if name.contains(['\\', '\n']) {
        let escaped = name.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{hex}  {escaped}\n")
    } else {
        format!("{hex}  {name}\n")
    }
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// RFC 8493 §2.1.3: in manifests, CR, LF and '%' in a path are written %0D, %0A and %25.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '\n' => encoded.push_str("%0A"),
            '\r' => encoded.push_str("%0D"),
            c => encoded.push(c),
        }
    }
    encoded
}

/// Inverse of [`encode_path`], in one left-to-right pass so `%250A` decodes to `%0A`. Any other
/// '%' (from a tool that does not encode) is kept as it is.
fn decode_path(encoded: &str) -> String {
    let mut path = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        path.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).map(str::to_ascii_uppercase);
        let decoded = match escape.as_deref() {
            Some("%25") => Some('%'),
            Some("%0A") => Some('\n'),
            Some("%0D") => Some('\r'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                path.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                path.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    path.push_str(rest);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bag::IMAGE_NAME;
    use crate::bag::fixtures::{entry, hex_of};

    #[test]
    fn manifest_is_sorted_with_two_spaces_and_round_trips() {
        let entries = vec![
            entry("data/b.bin", 'b'),
            entry("data/a/z.txt", 'a'),
            entry("data/a.tsv", 'c'),
        ];
        let text = manifest(&entries).expect("valid");
        assert_eq!(
            text,
            format!(
                "{}  data/a.tsv\n{}  data/a/z.txt\n{}  data/b.bin\n",
                hex_of('c'),
                hex_of('a'),
                hex_of('b')
            )
        );
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(parse_manifest(&text).expect("parses"), sorted);
        assert_eq!(manifest(&[]).expect("empty is valid"), "");
    }

    #[test]
    fn parse_manifest_accepts_sha256sum_and_bagit_python_forms() {
        let text = format!(
            "{}  data/text\r\n{} *data/binary\n\n{} data/single space\n{}\tdata/tab",
            hex_of('A'),
            hex_of('b'),
            hex_of('c'),
            hex_of('d')
        );
        assert_eq!(
            parse_manifest(&text).expect("parses"),
            vec![
                entry("data/text", 'a'),
                entry("data/binary", 'b'),
                entry("data/single space", 'c'),
                entry("data/tab", 'd'),
            ]
        );
    }

    #[test]
    fn parse_manifest_errors_name_the_line() {
        let good = format!("{}  data/a\n", hex_of('a'));
        let cases = [
            (format!("{good}{}  data/a\n", hex_of('b')), 2, "twice"),
            (format!("{good}abc  data/x\n"), 2, "64 hex"),
            (
                format!("{good}{}  data/b\n{}\n", hex_of('b'), hex_of('c')),
                3,
                "expected",
            ),
            (format!("{}  ../etc/passwd\n", hex_of('a')), 1, "'..'"),
            (format!("{}  /etc/passwd\n", hex_of('a')), 1, "absolute"),
            (format!("{}  \n", hex_of('a')), 1, "empty"),
        ];
        for (text, line, words) in cases {
            let error = parse_manifest(&text).expect_err(&text);
            assert!(
                matches!(error, BagError::ManifestLine { line: l, .. } if l == line),
                "{text:?}: {error}"
            );
            assert!(error.to_string().contains(words), "{text:?}: {error}");
        }
    }

    #[test]
    fn percent_newline_and_cr_in_paths_are_encoded_and_round_trip() {
        let entries = vec![
            entry("data/100%\nsure\r.txt", 'a'),
            entry("data/%0A literally", 'b'),
        ];
        let text = manifest(&entries).expect("valid");
        assert_eq!(
            text,
            format!(
                "{}  data/%250A literally\n{}  data/100%25%0Asure%0D.txt\n",
                hex_of('b'),
                hex_of('a')
            )
        );
        assert_eq!(text.lines().count(), 2, "one line per file");
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(parse_manifest(&text).expect("parses"), sorted);
        // Lower-case escapes and a stray '%' from other tools.
        assert_eq!(decode_path("a%0ab%0dc%zz%"), "a\nb\rc%zz%");
    }

    #[test]
    fn manifest_refuses_bad_paths_digests_and_duplicates() {
        let bad_paths = [
            "../x",
            "data/../../x",
            "/abs",
            "",
            "data//x",
            "data/x/",
            "./x",
            "a\\b",
        ];
        for path in bad_paths {
            let error = manifest(&[entry(path, 'a')]).expect_err(path);
            assert!(
                matches!(&error, BagError::InvalidPath { path: p, .. } if p == path),
                "{path}: {error}"
            );
            assert!(error.to_string().contains(&format!("{path:?}")), "{error}");
        }
        for digest in [
            "g".repeat(64),
            "A".repeat(64),
            "a".repeat(63),
            String::new(),
        ] {
            let error = manifest(&[("data/x".to_string(), digest.clone())]).expect_err(&digest);
            assert_eq!(
                error,
                BagError::InvalidDigest {
                    path: "data/x".into(),
                    digest
                }
            );
        }
        assert_eq!(
            manifest(&[entry("data/x", 'a'), entry("data/x", 'b')]),
            Err(BagError::Duplicate {
                path: "data/x".into()
            })
        );
        assert_eq!(
            manifest(&[entry("data/x/y", 'a'), entry("data/x", 'b')]),
            Err(BagError::FileAndDirectory {
                file: "data/x".into(),
                inside: "data/x/y".into()
            })
        );
    }

    #[test]
    fn sha256sum_lines_match_coreutils() {
        assert_eq!(
            sha256sum_line(&hex_of('a'), IMAGE_NAME),
            format!("{}  disk.raw\n", hex_of('a'))
        );
        assert_eq!(
            sha256sum_line(&hex_of('a'), "a\\b\nc"),
            format!("\\{}  a\\\\b\\nc\n", hex_of('a'))
        );
    }
}
