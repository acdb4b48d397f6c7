//! A forensnap config written from the forensic-vpc stacks' outputs (`forensnap config
//! from-stack`): what `aws cloudformation describe-stacks` prints for the forensic-account stack
//! and each member-role stack, plus the member roles' ExternalIds (a NoEcho parameter
//! CloudFormation never prints back), becomes the `[forensic]` and `[[members]]` tables, so a
//! deployment is configured without copying ARNs by hand.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A stack as `describe-stacks` prints it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    /// Its name.
    pub stack_name: String,
    /// Its outputs.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// Its parameters (NoEcho ones print as `****`).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// One stack output.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// Its key, e.g. `EvidenceBucketName`.
    pub output_key: String,
    /// Its value.
    pub output_value: String,
}

/// One stack parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// Its key.
    pub parameter_key: String,
    /// Its value.
    #[serde(default)]
    pub parameter_value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Described {
    stacks: Vec<Stack>,
}

/// Why a config cannot be written from the stacks given.
#[derive(Debug, thiserror::Error)]
pub enum FromStackError {
    /// A file is not `describe-stacks` output.
    #[error(
        "{file} is not the JSON `aws cloudformation describe-stacks --stack-name NAME` prints ({why}). Next: save that command's output to the file"
    )]
    NotDescribeStacks {
        /// The file.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// A stack lacks an output or parameter forensnap needs.
    #[error(
        "stack {stack} ({file}) has no {what} {key}: is it a {template} stack? Next: pass the stack made from forensic-vpc/{template}"
    )]
    Missing {
        /// The stack.
        stack: String,
        /// Its file.
        file: String,
        /// `output` or `parameter`.
        what: &'static str,
        /// The key.
        key: &'static str,
        /// The template it should come from.
        template: &'static str,
    },
    /// A member stack has no ExternalId given.
    #[error(
        "member account {account} (stack {stack}): no --external-id {account}=ID given (CloudFormation never prints the NoEcho ExternalId). Next: pass the ExternalId the member stack was deployed with"
    )]
    NoExternalId {
        /// The member account.
        account: String,
        /// Its stack.
        stack: String,
    },
    /// An ExternalId names an account no member stack is for.
    #[error(
        "--external-id names account {account}, but no --member stack is for it (members: {members}). Next: pass that account's member stack or drop the ExternalId"
    )]
    UnknownAccount {
        /// The account named.
        account: String,
        /// The member accounts given.
        members: String,
    },
}

/// Read one stack from `describe-stacks` JSON (`file` names it in errors).
pub fn parse(json: &str, file: &str) -> Result<Stack, FromStackError> {
    let fail = |why: String| FromStackError::NotDescribeStacks {
        file: file.to_string(),
        why,
    };
    let described: Described = serde_json::from_str(json).map_err(|e| fail(e.to_string()))?;
    match <[Stack; 1]>::try_from(described.stacks) {
        Ok([stack]) => Ok(stack),
        Err(stacks) => Err(fail(format!(
            "it holds {} stacks; describe one with --stack-name",
            stacks.len()
        ))),
    }
}

/// A stack and the file it was read from.
#[derive(Debug, Clone)]
pub struct StackFile {
    /// The stack.
    pub stack: Stack,
    /// Where it came from.
    pub file: String,
}

impl StackFile {
    fn output(&self, key: &'static str, template: &'static str) -> Result<&str, FromStackError> {
        self.stack
            .outputs
            .iter()
            .find(|o| o.output_key == key)
            .map(|o| o.output_value.as_str())
            .ok_or_else(|| self.missing("output", key, template))
    }

    fn parameter(&self, key: &'static str, template: &'static str) -> Result<&str, FromStackError> {
        self.stack
            .parameters
            .iter()
            .find(|p| p.parameter_key == key)
            .map(|p| p.parameter_value.as_str())
            .ok_or_else(|| self.missing("parameter", key, template))
    }

    fn missing(
        &self,
        what: &'static str,
        key: &'static str,
        template: &'static str,
    ) -> FromStackError {
        FromStackError::Missing {
            stack: self.stack.stack_name.clone(),
            file: self.file.clone(),
            what,
            key,
            template,
        }
    }
}

fn quoted(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

const FORENSIC: &str = "forensic-account.yaml";
const MEMBER: &str = "member-role.yaml";

/// The config text: `[forensic]` from the forensic stack, one `[[members]]` per member stack
/// with its ExternalId from `external_ids` (account -> id). Every other key keeps its default
/// (config/forensnap.toml documents them).
pub fn config_from_stacks(
    forensic: &StackFile,
    members: &[StackFile],
    external_ids: &BTreeMap<String, String>,
) -> Result<String, FromStackError> {
    let role_arn = forensic.output("CollectorRoleArn", FORENSIC)?;
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let mut lines = vec![
        format!(
            "# Written by `forensnap config from-stack` from stack {} and {} member stack(s).",
            forensic.stack.stack_name,
            members.len()
        ),
        "# config/forensnap.toml documents every other key.".to_string(),
        String::new(),
        "[forensic]".to_string(),
        format!("account = {}", quoted(account)),
        format!("region = {}", quoted(forensic.output("Region", FORENSIC)?)),
        format!(
            "evidence_bucket = {}",
            quoted(forensic.output("EvidenceBucketName", FORENSIC)?)
        ),
        format!(
            "ebs_key_arn = {}",
            quoted(forensic.output("EbsKeyArn", FORENSIC)?)
        ),
        format!(
            "signing_key_arn = {}",
            quoted(forensic.output("SigningKeyArn", FORENSIC)?)
        ),
        format!(
            "# The bucket's default COMPLIANCE retention (EvidenceRetentionDays); forensnap refuses a\n\
             # bucket whose default is shorter than this.\nretention_days = {}",
            forensic.parameter("EvidenceRetentionDays", FORENSIC)?
        ),
    ];
    let mut accounts = Vec::new();
    for member in members {
        let account = member.output("AccountId", MEMBER)?;
        let role = member.output("RoleArn", MEMBER)?;
        let external_id =
            external_ids
                .get(account)
                .ok_or_else(|| FromStackError::NoExternalId {
                    account: account.to_string(),
                    stack: member.stack.stack_name.clone(),
                })?;
        lines.extend([
            String::new(),
            "[[members]]".to_string(),
            format!("account = {}", quoted(account)),
            format!("role = {}", quoted(role)),
            format!("external_id = {}", quoted(external_id)),
        ]);
        accounts.push(account.to_string());
    }
    // Memory capture stays off (`enabled` or `collect --memory` turns it on); the stack names
    // where its transfer plans go. A stack deployed before the transfer bucket has none.
    if let Ok(transfer) = forensic.output("TransferBucketName", FORENSIC) {
        lines.extend([
            String::new(),
            "[memory]".to_string(),
            format!("transfer_bucket = {}", quoted(transfer)),
        ]);
    }
    if let Some(unknown) = external_ids.keys().find(|a| !accounts.contains(a)) {
        return Err(FromStackError::UnknownAccount {
            account: unknown.clone(),
            members: accounts.join(", "),
        });
    }
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORENSIC_JSON: &str = r#"{"Stacks": [{"StackName": "forensnap-forensic",
        "Parameters": [{"ParameterKey": "EvidenceRetentionDays", "ParameterValue": "365"}],
        "Outputs": [
          {"OutputKey": "CollectorRoleArn", "OutputValue": "arn:aws:iam::123456789012:role/forensnap-collector"},
          {"OutputKey": "Region", "OutputValue": "eu-west-1"},
          {"OutputKey": "EvidenceBucketName", "OutputValue": "forensnap-evidence-123456789012-eu-west-1"},
          {"OutputKey": "TransferBucketName", "OutputValue": "forensnap-transfer-123456789012-eu-west-1"},
          {"OutputKey": "EbsKeyArn", "OutputValue": "arn:aws:kms:eu-west-1:123456789012:key/e"},
          {"OutputKey": "SigningKeyArn", "OutputValue": "arn:aws:kms:eu-west-1:123456789012:key/s"}]}]}"#;
    const MEMBER_JSON: &str = r#"{"Stacks": [{"StackName": "forensnap-member",
        "Parameters": [{"ParameterKey": "ExternalId", "ParameterValue": "****"}],
        "Outputs": [
          {"OutputKey": "RoleArn", "OutputValue": "arn:aws:iam::111111111111:role/ForensnapCollector"},
          {"OutputKey": "AccountId", "OutputValue": "111111111111"}]}]}"#;

    fn file(json: &str, name: &str) -> StackFile {
        StackFile {
            stack: parse(json, name).expect("parses"),
            file: name.to_string(),
        }
    }

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, i)| (a.to_string(), i.to_string()))
            .collect()
    }

    #[test]
    fn the_stacks_outputs_become_a_config_that_loads() {
        let text = config_from_stacks(
            &file(FORENSIC_JSON, "f.json"),
            &[file(MEMBER_JSON, "m.json")],
            &ids(&[("111111111111", "ext-\"quoted\"-2026-abcdef")]),
        )
        .expect("config");
        let config: crate::Config = toml::from_str(&text).expect("parses");
        config
            .validate(std::path::Path::new("from-stack.toml"))
            .expect("a valid config");
        assert_eq!(config.forensic.account, "123456789012");
        assert_eq!(config.forensic.region, "eu-west-1");
        assert_eq!(
            config.forensic.evidence_bucket,
            "forensnap-evidence-123456789012-eu-west-1"
        );
        assert_eq!(config.forensic.retention_days, 365);
        assert_eq!(
            config.memory.transfer_bucket.as_deref(),
            Some("forensnap-transfer-123456789012-eu-west-1")
        );
        assert!(
            !config.memory.enabled,
            "memory capture stays off until asked"
        );
        assert_eq!(config.members.len(), 1);
        assert_eq!(config.members[0].external_id, "ext-\"quoted\"-2026-abcdef");
        assert_eq!(
            config.members[0].role_arn(),
            "arn:aws:iam::111111111111:role/ForensnapCollector"
        );
    }

    #[test]
    fn a_missing_output_external_id_or_stack_is_named() {
        let err = config_from_stacks(&file(MEMBER_JSON, "m.json"), &[], &ids(&[]))
            .expect_err("a member stack as the forensic one");
        assert!(
            err.to_string().contains("has no output CollectorRoleArn")
                && err.to_string().contains("forensic-account.yaml"),
            "{err}"
        );
        let err = config_from_stacks(
            &file(FORENSIC_JSON, "f.json"),
            &[file(MEMBER_JSON, "m.json")],
            &ids(&[]),
        )
        .expect_err("no ExternalId");
        assert!(
            err.to_string()
                .contains("no --external-id 111111111111=ID given"),
            "{err}"
        );
        let err = config_from_stacks(
            &file(FORENSIC_JSON, "f.json"),
            &[],
            &ids(&[("222222222222", "x")]),
        )
        .expect_err("an ExternalId for no stack");
        assert!(err.to_string().contains("account 222222222222"), "{err}");
        let err = parse(r#"{"Stacks": []}"#, "empty.json").expect_err("no stack");
        assert!(err.to_string().contains("holds 0 stacks"), "{err}");
        let err = parse("not json", "bad.json").expect_err("not json");
        assert!(
            err.to_string().contains("bad.json is not the JSON"),
            "{err}"
        );
    }
}
