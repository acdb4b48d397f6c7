//! Digest object keys: where CloudTrail delivers a digest file, and what its key says (account,
//! region, trail, end time), as validation.py's digest key regex reads them.

use time::OffsetDateTime;
use time::macros::format_description;

/// What a CloudTrail digest key names:
/// `[prefix/]AWSLogs/[o-org/]{account}/CloudTrail-Digest/{region}/{yyyy}/{mm}/{dd}/{account}_CloudTrail-Digest_{region}_{trail}_{home region}_{yyyymmddThhmmssZ}[_backfill].json.gz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestKey {
    /// The trail's S3 key prefix, without the trailing `/`; empty when it has none.
    pub prefix: String,
    /// The organization id of an organization trail's key.
    pub organization_id: Option<String>,
    /// The account whose events the digest covers (12 digits).
    pub account_id: String,
    /// The region whose events it covers (the trail's source region).
    pub region: String,
    /// The trail's name.
    pub trail_name: String,
    /// The trail's home region.
    pub home_region: String,
    /// The end of the period the digest covers (the key's timestamp).
    pub end: OffsetDateTime,
    /// A backfill digest (`_backfill.json.gz`): its own chain, as validate-logs treats it.
    pub backfill: bool,
}

impl DigestKey {
    /// Read a key; `None` when it is not a CloudTrail digest key (the account or region differs
    /// between the path and the file name, a part is empty, or the timestamp does not read).
    pub fn parse(key: &str) -> Option<DigestKey> {
        let at = key.rfind("AWSLogs/")?;
        let prefix = &key[..at];
        let prefix = if prefix.is_empty() {
            ""
        } else {
            prefix.strip_suffix('/')?
        };
        let parts: Vec<&str> = key[at + "AWSLogs/".len()..].split('/').collect();
        let (organization_id, rest) = match parts.len() {
            7 => (None, &parts[..]),
            8 => (Some(parts[0].to_string()), &parts[1..]),
            _ => return None,
        };
        let [account, kind, region, year, month, day, file] = rest else {
            return None;
        };
        if !is_account(account)
            || *kind != "CloudTrail-Digest"
            || !is_region(region)
            || ![year, month, day]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let name = file
            .strip_prefix(&format!("{account}_CloudTrail-Digest_{region}_"))?
            .strip_suffix(".json.gz")?;
        let (name, backfill) = match name.strip_suffix("_backfill") {
            Some(name) => (name, true),
            None => (name, false),
        };
        let (rest, stamp) = name.rsplit_once('_')?;
        let (trail_name, home_region) = rest.rsplit_once('_')?;
        if trail_name.is_empty() || !is_region(home_region) {
            return None;
        }
        Some(DigestKey {
            prefix: prefix.to_string(),
            organization_id,
            account_id: account.to_string(),
            region: region.to_string(),
            trail_name: trail_name.to_string(),
            home_region: home_region.to_string(),
            end: key_time(stamp)?,
            backfill,
        })
    }

    /// The chain the digest belongs to: everything the key says but the time. CloudTrail links
    /// the digests of one trail, account and region (and backfill digests apart) in one chain.
    pub fn chain(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.prefix,
            self.organization_id.as_deref().unwrap_or(""),
            self.account_id,
            self.region,
            self.trail_name,
            self.home_region,
            if self.backfill { "backfill" } else { "" }
        )
    }
}

/// Whether a key is a CloudTrail digest key (validation.py's digest key regex, for any account,
/// region and trail: [`DigestKey::parse`] says which) and the end time its `YYYYMMDDTHHMMSSZ`
/// names.
pub fn digest_key_time(key: &str) -> Option<OffsetDateTime> {
    DigestKey::parse(key).map(|k| k.end)
}

fn key_time(stamp: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    if stamp.len() != 16 {
        return None;
    }
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/03/01/111122223333_CloudTrail-Digest_eu-west-1_org_trail_us-east-1_20260301T120000Z.json.gz";

    #[test]
    fn a_digest_key_reads() {
        let key = DigestKey::parse(KEY).expect("digest key");
        assert_eq!(key.prefix, "");
        assert_eq!(key.account_id, "111122223333");
        assert_eq!(key.region, "eu-west-1");
        assert_eq!(
            key.trail_name, "org_trail",
            "a trail name may hold underscores"
        );
        assert_eq!(key.home_region, "us-east-1");
        assert_eq!(key.end, datetime!(2026-03-01 12:00:00 UTC));
        assert!(!key.backfill);
        assert_eq!(
            digest_key_time(KEY),
            Some(datetime!(2026-03-01 12:00:00 UTC))
        );
    }

    #[test]
    fn prefixed_organization_and_backfill_keys_read() {
        let key = format!("logs/ct/AWSLogs/o-abc123/{}", &KEY["AWSLogs/".len()..])
            .replace(".json.gz", "_backfill.json.gz");
        let parsed = DigestKey::parse(&key).expect("digest key");
        assert_eq!(parsed.prefix, "logs/ct");
        assert_eq!(parsed.organization_id.as_deref(), Some("o-abc123"));
        assert!(parsed.backfill);
        assert_ne!(
            parsed.chain(),
            DigestKey::parse(KEY).expect("plain").chain()
        );
    }

    #[test]
    fn other_keys_are_not_digests() {
        for key in [
            // A log file.
            "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/03/01/111122223333_CloudTrail_eu-west-1_20260301T1200Z_abc.json.gz",
            // Account differs between path and name.
            &KEY.replacen("111122223333_", "444455556666_", 1),
            // Region differs.
            &KEY.replacen("_eu-west-1_", "_eu-west-2_", 1),
            // Timestamp malformed.
            &KEY.replace("20260301T120000Z", "20260301T1200Z"),
            &KEY.replace("20260301T120000Z", "20261301T120000Z"),
            // Not gzip-named.
            &KEY.replace(".json.gz", ".json"),
            // A prefix without its slash.
            &format!("x{KEY}"),
        ] {
            assert_eq!(DigestKey::parse(key), None, "{key}");
        }
    }
}
