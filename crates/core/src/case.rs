//! Case ids, and the AWS-facing names derived from them.

use std::fmt;

/// A case id as responders type it (`IR-2026-0042`): 1-48 characters of `[A-Za-z0-9._-]`,
/// starting with a letter or digit. The same characters are safe in S3 keys, STS session names
/// and tags, so the id appears unchanged everywhere a responder or auditor looks for it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId(String);

/// Why a case id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "case id {given:?} is not usable: {why}. Use 1-48 letters, digits, '.', '_' or '-', starting with a letter or digit (for example IR-2026-0042)"
)]
pub struct CaseIdError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Longest case id: keeps `forensnap-<case>` within STS's 64-character session name limit.
pub const MAX_CASE_ID: usize = 48;

impl CaseId {
    /// Validate a case id.
    pub fn parse(given: &str) -> Result<CaseId, CaseIdError> {
        let err = |why| CaseIdError {
            given: given.to_string(),
            why,
        };
        if given.is_empty() {
            return Err(err("it is empty"));
        }
        if given.len() > MAX_CASE_ID {
            return Err(err("it is longer than 48 characters"));
        }
        if !given
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            return Err(err("it must start with a letter or digit"));
        }
        if !given
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(err(
                "it holds a character other than letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(CaseId(given.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// STS RoleSessionName: shows in the member account's CloudTrail as the acting session.
    pub fn session_name(&self) -> String {
        format!("forensnap-{}", self.0)
    }

    /// STS SourceIdentity: follows the session through role chaining, so every member-account
    /// CloudTrail record of the collection carries the case.
    pub fn source_identity(&self) -> String {
        if self.0.len() >= 2 {
            self.0.clone()
        } else {
            format!("case-{}", self.0)
        }
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CaseId {
    type Error = CaseIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CaseId::parse(&value)
    }
}

impl From<CaseId> for String {
    fn from(value: CaseId) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ids_pass_and_name_the_session() {
        let case = CaseId::parse("IR-2026-0042").expect("valid");
        assert_eq!(case.session_name(), "forensnap-IR-2026-0042");
        assert_eq!(case.source_identity(), "IR-2026-0042");
        assert_eq!(
            CaseId::parse("7").expect("valid").source_identity(),
            "case-7"
        );
        assert!(case.session_name().len() <= 64);
        assert!(
            CaseId::parse(&"a".repeat(48))
                .expect("max")
                .session_name()
                .len()
                <= 64
        );
    }

    #[test]
    fn bad_ids_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("-x", "start"),
            ("a/b", "character"),
            ("a b", "character"),
            ("ü", "start"),
        ] {
            let err = CaseId::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
            assert!(err.to_string().contains("IR-2026-0042"), "names an example");
        }
        assert!(CaseId::parse(&"a".repeat(49)).is_err());
    }
}
