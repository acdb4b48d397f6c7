//! `bag-info.txt`: the bag's metadata as `Label: value` lines, with `Payload-Oxum` computed from
//! the payload ([`bag_info`]), and its parser ([`parse_bag_info`]), which follows RFC 8493's
//! continuation lines.

use super::{BagError, PayloadFile, lines};

/// bag-info label computed by [`bag_info`] from the payload.
const PAYLOAD_OXUM: &str = "Payload-Oxum";

/// `bag-info.txt`: the given `Label: value` fields in order, then `Payload-Oxum:
/// <total octets>.<file count>` computed from `payload`.
///
/// Labels must be non-empty, without ':', CR, LF or leading/trailing whitespace, and must not be
/// `Payload-Oxum` (it is computed here); values must not contain CR or LF.
pub fn bag_info(fields: &[(String, String)], payload: &[PayloadFile]) -> Result<String, BagError> {
    let mut text = String::new();
    for (label, value) in fields {
        check_label(label)?;
        if value.contains(['\r', '\n']) {
            return Err(BagError::InvalidValue {
                label: label.clone(),
            });
        }
        text.push_str(&format!("{label}: {value}\n"));
    }
    let octets: u64 = payload.iter().map(|file| file.size).sum();
    text.push_str(&format!("{PAYLOAD_OXUM}: {octets}.{}\n", payload.len()));
    Ok(text)
}

fn check_label(label: &str) -> Result<(), BagError> {
    let reason = if label.is_empty() {
        "is empty"
    } else if label.contains(['\r', '\n']) {
        "contains a line break"
    } else if label.contains(':') {
        "contains ':', which separates label from value"
    } else if label.trim() != label {
        // A leading blank would make the line a continuation of the previous value.
        "has leading or trailing whitespace"
    } else if label.eq_ignore_ascii_case(PAYLOAD_OXUM) {
        "is computed from the payload and cannot be given"
    } else {
        return Ok(());
    };
    Err(BagError::InvalidLabel {
        label: label.to_string(),
        reason,
    })
}

/// Parse `bag-info.txt` into `(label, value)` pairs in order. A line starting with a space or
/// tab continues the previous value (RFC 8493), joined with a single space; blank lines are
/// skipped; the one blank after the ':' is not part of the value.
pub fn parse_bag_info(text: &str) -> Result<Vec<(String, String)>, BagError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (number, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields.last_mut().ok_or_else(|| BagError::BagInfoLine {
                line: number,
                reason: "continuation line (starts with whitespace) before any label".to_string(),
            })?;
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(line.trim_start());
            continue;
        }
        let (label, value) = line.split_once(':').ok_or_else(|| BagError::BagInfoLine {
            line: number,
            reason: format!("{line:?} has no ':' separating label and value"),
        })?;
        let label = label.trim_end();
        if label.is_empty() {
            return Err(BagError::BagInfoLine {
                line: number,
                reason: "empty label before ':'".to_string(),
            });
        }
        let value = value.strip_prefix([' ', '\t']).unwrap_or(value).to_string();
        fields.push((label.to_string(), value));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bag::fixtures::{field, payload};
    use crate::layout::BLOCK_SIZE;

    #[test]
    fn bag_info_lists_fields_then_payload_oxum_and_round_trips() {
        let fields = vec![
            field("Source-Organization", "Example Corp IR"),
            field("External-Identifier", "case-2024-001/vol-0abc"),
            field("Empty", ""),
            field("Spaced", "  two leading blanks, a trailing one "),
        ];
        let files = [
            payload("data/blocks.bin", 'a', 3 * BLOCK_SIZE),
            payload("data/blockmap.tsv", 'b', 200),
            payload("data/image.sha256", 'c', 76),
        ];
        let text = bag_info(&fields, &files).expect("valid");
        let oxum = 3 * BLOCK_SIZE + 276;
        assert_eq!(
            text,
            format!(
                "Source-Organization: Example Corp IR\nExternal-Identifier: case-2024-001/vol-0abc\n\
                 Empty: \nSpaced:   two leading blanks, a trailing one \nPayload-Oxum: {oxum}.3\n"
            )
        );
        let mut expected = fields.clone();
        expected.push(field("Payload-Oxum", &format!("{oxum}.3")));
        assert_eq!(parse_bag_info(&text).expect("parses"), expected);
        assert_eq!(
            bag_info(&[], &[]).expect("valid"),
            "Payload-Oxum: 0.0\n",
            "an empty payload still has an oxum"
        );
    }

    #[test]
    fn bag_info_refuses_bad_labels_and_values() {
        for label in [
            "",
            "Has:Colon",
            " Lead",
            "Trail ",
            "Line\nBreak",
            "payload-oxum",
        ] {
            let error = bag_info(&[field(label, "v")], &[]).expect_err(label);
            assert!(
                matches!(&error, BagError::InvalidLabel { label: l, .. } if l == label),
                "{label:?}: {error}"
            );
        }
        for value in ["two\nlines", "carriage\rreturn"] {
            assert_eq!(
                bag_info(&[field("Note", value)], &[]),
                Err(BagError::InvalidValue {
                    label: "Note".into()
                })
            );
        }
    }

    #[test]
    fn parse_bag_info_joins_continuation_lines_and_names_bad_lines() {
        let text = "Contact-Name: Jane\r\nExternal-Description: a long\n  wrapped\n\tvalue\n\n\
                    Bag-Count:1 of 2\nLabel-Only:\n  continued\n";
        assert_eq!(
            parse_bag_info(text).expect("parses"),
            vec![
                field("Contact-Name", "Jane"),
                field("External-Description", "a long wrapped value"),
                field("Bag-Count", "1 of 2"),
                field("Label-Only", "continued"),
            ]
        );
        let error = parse_bag_info("A: b\nno colon here\n").expect_err("no colon");
        assert!(
            matches!(error, BagError::BagInfoLine { line: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("no colon here"), "{error}");
        assert!(matches!(
            parse_bag_info("  continued\n"),
            Err(BagError::BagInfoLine { line: 1, .. })
        ));
        assert!(matches!(
            parse_bag_info("A: b\n: value\n"),
            Err(BagError::BagInfoLine { line: 2, .. })
        ));
    }
}
