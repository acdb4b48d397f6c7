//! The little XML S3 speaks: documents written with escaping, the few request bodies read
//! (CompleteMultipartUpload, versioning, Object Lock configuration) by tag, and S3's dates.

use std::fmt::Write as _;
use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// S3's XML namespace.
pub(crate) const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// An XML document under construction.
#[derive(Debug)]
pub(crate) struct Doc(String);

impl Doc {
    /// A document whose root element is `root` (in S3's namespace).
    pub(crate) fn new(root: &str) -> Doc {
        Doc(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NS}">"#
        ))
    }

    /// `<name>value</name>`, escaped.
    pub(crate) fn el(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Doc {
        let _ = write!(self.0, "<{name}>{}</{name}>", escape(&value.to_string()));
        self
    }

    /// `<name>value</name>` when there is a value.
    pub(crate) fn opt(&mut self, name: &str, value: Option<impl std::fmt::Display>) -> &mut Doc {
        if let Some(value) = value {
            self.el(name, value);
        }
        self
    }

    /// `<name>`.
    pub(crate) fn open(&mut self, name: &str) -> &mut Doc {
        let _ = write!(self.0, "<{name}>");
        self
    }

    /// `</name>`.
    pub(crate) fn close(&mut self, name: &str) -> &mut Doc {
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// The document, its root closed.
    pub(crate) fn end(mut self, root: &str) -> String {
        self.close(root);
        self.0
    }
}

/// `s` with XML's five special characters escaped.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` with the five entities (and decimal or hex character references) replaced.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The raw contents of every `<name>...</name>` in `xml`, in order (no nesting of `name`).
pub(crate) fn all<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else { break };
        found.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    found
}

/// The unescaped, trimmed text of the first `<name>` in `xml`.
pub(crate) fn text(xml: &str, name: &str) -> Option<String> {
    all(xml, name).first().map(|inner| unescape(inner.trim()))
}

/// An S3 timestamp in XML (`2024-01-31T12:00:00.000Z`).
pub(crate) fn iso(t: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(t).format(&format).unwrap_or_default()
}

/// A timestamp in an HTTP header (`Wed, 31 Jan 2024 12:00:00 GMT`).
pub(crate) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// A timestamp given in a header in ISO 8601 (`x-amz-object-lock-retain-until-date`).
pub(crate) fn parse_iso(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        let s = r#"a&b<c>"d'e"#;
        assert_eq!(unescape(&escape(s)), s);
        assert_eq!(unescape("&#34;x&#x22;"), "\"x\"");
    }

    #[test]
    fn reads_parts_of_a_complete_request() {
        let xml = r#"<CompleteMultipartUpload xmlns="x"><Part><ETag>&quot;e1&quot;</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#;
        let parts = all(xml, "Part");
        assert_eq!(parts.len(), 2);
        assert_eq!(text(parts[0], "ETag").as_deref(), Some("\"e1\""));
        assert_eq!(text(parts[1], "PartNumber").as_deref(), Some("2"));
        assert_eq!(text(parts[1], "ETag"), None);
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(iso(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(http_date(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(
            parse_iso("2023-11-14T22:13:20Z"),
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
    }
}
