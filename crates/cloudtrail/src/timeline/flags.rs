//! The actions investigators look for, keyed on (`eventSource`, `eventName`), each with a short
//! human reason; and the few whose meaning depends on the request (a policy attached to the
//! caller itself, a parameter read with decryption, user data replaced).
//!
//! The list follows what incident-response playbooks for AWS hunt first after a credential
//! compromise: new ways back in (persistence), blinding the defenders (defence evasion), more
//! power for the same principal (privilege escalation) and secrets read (credential access).
//! `iam:PassRole` is a permission, not an event, so it is seen through the calls that pass a
//! role (`CreateFunction20150331`, `RunInstances`) rather than flagged itself.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a row is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// A new way back in: users, keys, passwords, roles, trust, code that runs later.
    Persistence,
    /// Blinding the defenders: logging, detection and recording stopped or changed.
    DefenceEvasion,
    /// More power for the same principal.
    PrivilegeEscalation,
    /// Secrets and credentials read.
    CredentialAccess,
}

impl Flag {
    /// The words used in `why` and the CSV (`persistence`, `defence evasion`, ...).
    pub fn words(self) -> &'static str {
        match self {
            Flag::Persistence => "persistence",
            Flag::DefenceEvasion => "defence evasion",
            Flag::PrivilegeEscalation => "privilege escalation",
            Flag::CredentialAccess => "credential access",
        }
    }

    /// The stable code (`persistence`, `defence-evasion`, ...), as in the JSON lines.
    pub fn code(self) -> &'static str {
        match self {
            Flag::Persistence => "persistence",
            Flag::DefenceEvasion => "defence-evasion",
            Flag::PrivilegeEscalation => "privilege-escalation",
            Flag::CredentialAccess => "credential-access",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

const IAM: &str = "iam.amazonaws.com";
const STS: &str = "sts.amazonaws.com";
const LAMBDA: &str = "lambda.amazonaws.com";
const EC2: &str = "ec2.amazonaws.com";
const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";
const GUARDDUTY: &str = "guardduty.amazonaws.com";
const CONFIG: &str = "config.amazonaws.com";
const SECURITYHUB: &str = "securityhub.amazonaws.com";
const LOGS: &str = "logs.amazonaws.com";
const SECRETS: &str = "secretsmanager.amazonaws.com";
const SSM: &str = "ssm.amazonaws.com";

use Flag::{CredentialAccess, DefenceEvasion, Persistence, PrivilegeEscalation};

/// (eventSource, eventName, flag, reason). One line an action: a table to read down.
#[rustfmt::skip]
const TABLE: &[(&str, &str, Flag, &str)] = &[
    // Persistence: identities and credentials.
    (IAM, "CreateUser", Persistence, "new IAM user"),
    (IAM, "CreateAccessKey", Persistence, "new access key"),
    (IAM, "CreateLoginProfile", Persistence, "console password set"),
    (IAM, "UpdateLoginProfile", Persistence, "console password changed"),
    (IAM, "CreateRole", Persistence, "new role"),
    (IAM, "UpdateAssumeRolePolicy", Persistence, "role trust policy changed"),
    (IAM, "AttachUserPolicy", Persistence, "managed policy attached to a user"),
    (IAM, "AttachRolePolicy", Persistence, "managed policy attached to a role"),
    (IAM, "AttachGroupPolicy", Persistence, "managed policy attached to a group"),
    (IAM, "PutUserPolicy", Persistence, "inline policy put on a user"),
    (IAM, "PutRolePolicy", Persistence, "inline policy put on a role"),
    (IAM, "PutGroupPolicy", Persistence, "inline policy put on a group"),
    (IAM, "AddUserToGroup", Persistence, "user added to a group"),
    (IAM, "CreateVirtualMFADevice", Persistence, "virtual MFA device created"),
    (IAM, "EnableMFADevice", Persistence, "MFA device enabled for a user"),
    (IAM, "UploadSSHPublicKey", Persistence, "SSH public key uploaded"),
    (IAM, "CreateServiceSpecificCredential", Persistence, "service-specific credential created"),
    (IAM, "CreateSAMLProvider", Persistence, "new SAML identity provider"),
    (IAM, "CreateOpenIDConnectProvider", Persistence, "new OIDC identity provider"),
    (STS, "GetFederationToken", Persistence, "federation token (outlives the key's deletion)"),
    // Persistence: code that runs later, and ways into instances.
    (LAMBDA, "CreateFunction20150331", Persistence, "new Lambda function"),
    (LAMBDA, "UpdateFunctionCode20150331v2", Persistence, "Lambda function code replaced"),
    (LAMBDA, "UpdateFunctionConfiguration20150331v2", Persistence, "Lambda function configuration changed"),
    (LAMBDA, "AddPermission20150331v2", Persistence, "Lambda function opened to another principal"),
    (LAMBDA, "AddLayerVersionPermission20181031", Persistence, "Lambda layer opened to another principal"),
    (EC2, "CreateKeyPair", Persistence, "new EC2 key pair"),
    (EC2, "ImportKeyPair", Persistence, "EC2 key pair imported"),
    // Defence evasion.
    (CLOUDTRAIL, "StopLogging", DefenceEvasion, "trail logging stopped"),
    (CLOUDTRAIL, "DeleteTrail", DefenceEvasion, "trail deleted"),
    (CLOUDTRAIL, "UpdateTrail", DefenceEvasion, "trail changed"),
    (CLOUDTRAIL, "PutEventSelectors", DefenceEvasion, "trail event selectors changed"),
    (CLOUDTRAIL, "PutInsightSelectors", DefenceEvasion, "trail insight selectors changed"),
    (GUARDDUTY, "DeleteDetector", DefenceEvasion, "GuardDuty detector deleted"),
    (GUARDDUTY, "UpdateDetector", DefenceEvasion, "GuardDuty detector changed"),
    (GUARDDUTY, "DisassociateFromMasterAccount", DefenceEvasion, "GuardDuty member left its administrator"),
    (GUARDDUTY, "DisassociateFromAdministratorAccount", DefenceEvasion, "GuardDuty member left its administrator"),
    (GUARDDUTY, "CreateFilter", DefenceEvasion, "GuardDuty filter created (can archive findings)"),
    (GUARDDUTY, "UpdateFilter", DefenceEvasion, "GuardDuty filter changed (can archive findings)"),
    (GUARDDUTY, "CreateIPSet", DefenceEvasion, "GuardDuty trusted IP list created"),
    (GUARDDUTY, "UpdateIPSet", DefenceEvasion, "GuardDuty trusted IP list changed"),
    (GUARDDUTY, "DeletePublishingDestination", DefenceEvasion, "GuardDuty findings export deleted"),
    (CONFIG, "StopConfigurationRecorder", DefenceEvasion, "AWS Config recorder stopped"),
    (CONFIG, "DeleteConfigurationRecorder", DefenceEvasion, "AWS Config recorder deleted"),
    (CONFIG, "DeleteDeliveryChannel", DefenceEvasion, "AWS Config delivery channel deleted"),
    (SECURITYHUB, "DisableSecurityHub", DefenceEvasion, "Security Hub disabled"),
    (SECURITYHUB, "BatchDisableStandards", DefenceEvasion, "Security Hub standards disabled"),
    (EC2, "DeleteFlowLogs", DefenceEvasion, "VPC flow logs deleted"),
    (LOGS, "DeleteLogGroup", DefenceEvasion, "CloudWatch log group deleted"),
    (LOGS, "DeleteLogStream", DefenceEvasion, "CloudWatch log stream deleted"),
    // Privilege escalation.
    (IAM, "CreatePolicyVersion", PrivilegeEscalation, "new policy version"),
    (IAM, "SetDefaultPolicyVersion", PrivilegeEscalation, "policy default version changed"),
    // Credential access.
    (SECRETS, "GetSecretValue", CredentialAccess, "secret read"),
    (SECRETS, "BatchGetSecretValue", CredentialAccess, "secrets read"),
    (EC2, "GetPasswordData", CredentialAccess, "Windows administrator password read"),
];

/// The flag of an action, if it is one investigators look for, with a short human reason
/// (`("iam.amazonaws.com", "CreateAccessKey")` -> persistence, "new access key").
///
/// Three kinds of action are flagged only with their request ([`flag_record`]): a policy attached
/// or put on the caller itself (privilege escalation rather than persistence), SSM parameters
/// read with decryption (credential access; plain reads are not flagged) and
/// `ModifyInstanceAttribute` replacing user data (persistence; other attributes are not).
pub fn flag(event_source: &str, event_name: &str) -> Option<(Flag, &'static str)> {
    TABLE
        .iter()
        .find(|(source, name, _, _)| *source == event_source && *name == event_name)
        .map(|(_, _, flag, why)| (*flag, *why))
}

/// The flag of a full CloudTrail record: [`flag`], refined by the request where the action's
/// meaning depends on it.
pub fn flag_record(record: &Value) -> Option<(Flag, &'static str)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let source = text(record, "eventSource").unwrap_or_default();
    let name = text(record, "eventName").unwrap_or_default();
    let request = record.get("requestParameters").unwrap_or(&Value::Null);
    match (source.as_str(), name.as_str()) {
        (IAM, "AttachUserPolicy" | "PutUserPolicy" | "AddUserToGroup")
            if text(request, "userName").is_some_and(|user| is_caller(record, &user)) =>
        {
            Some((
                PrivilegeEscalation,
                match name.as_str() {
                    "AttachUserPolicy" => "managed policy attached to the caller itself",
                    "PutUserPolicy" => "inline policy put on the caller itself",
                    _ => "caller added itself to a group",
                },
            ))
        }
        (SSM, "GetParameter" | "GetParameters" | "GetParametersByPath") => {
            let decrypted = match request.get("withDecryption") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            decrypted.then_some((CredentialAccess, "parameter read with decryption"))
        }
        (EC2, "ModifyInstanceAttribute") => {
            let user_data = request.get("userData").is_some()
                || text(request, "attribute").as_deref() == Some("userData");
            user_data.then_some((Persistence, "instance user data replaced (runs at boot)"))
        }
        _ => flag(&source, &name),
    }
}

/// Whether the IAM user name is the caller's own.
fn is_caller(record: &Value, user: &str) -> bool {
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    if identity.get("type").and_then(Value::as_str) != Some("IAMUser") {
        return false;
    }
    identity.get("userName").and_then(Value::as_str) == Some(user)
        || identity
            .get("arn")
            .and_then(Value::as_str)
            .is_some_and(|arn| arn.rsplit('/').next() == Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_actions_of_the_issue_are_flagged() {
        assert_eq!(
            flag(IAM, "CreateAccessKey"),
            Some((Persistence, "new access key"))
        );
        assert_eq!(
            flag(IAM, "UpdateAssumeRolePolicy").map(|f| f.0),
            Some(Persistence)
        );
        assert_eq!(
            flag(CLOUDTRAIL, "StopLogging").map(|f| f.0),
            Some(DefenceEvasion)
        );
        assert_eq!(
            flag(GUARDDUTY, "DeleteDetector").map(|f| f.0),
            Some(DefenceEvasion)
        );
        assert_eq!(
            flag(LAMBDA, "CreateFunction20150331").map(|f| f.0),
            Some(Persistence)
        );
        assert_eq!(
            flag(SECRETS, "GetSecretValue").map(|f| f.0),
            Some(CredentialAccess)
        );
        assert_eq!(
            flag(IAM, "CreatePolicyVersion").map(|f| f.0),
            Some(PrivilegeEscalation)
        );
    }

    #[test]
    fn ordinary_and_misattributed_actions_are_not() {
        assert_eq!(flag(EC2, "DescribeInstances"), None);
        assert_eq!(flag(IAM, "ListUsers"), None);
        // The name alone is not enough: the source must match.
        assert_eq!(flag(EC2, "StopLogging"), None);
        assert_eq!(flag("iam", "CreateAccessKey"), None);
    }

    #[test]
    fn every_table_entry_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (source, name, _, why) in TABLE {
            assert!(seen.insert((source, name)), "{source} {name} twice");
            assert!(!why.is_empty() && why.len() < 60, "{name}: {why}");
        }
    }

    #[test]
    fn a_policy_attached_to_the_caller_itself_is_escalation() {
        let record = |user: &str| {
            json!({
                "eventSource": IAM, "eventName": "AttachUserPolicy",
                "userIdentity": {"type": "IAMUser", "userName": "mallory",
                                 "arn": "arn:aws:iam::111122223333:user/mallory"},
                "requestParameters": {"userName": user, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
            })
        };
        assert_eq!(
            flag_record(&record("mallory")).map(|f| f.0),
            Some(PrivilegeEscalation)
        );
        assert_eq!(flag_record(&record("bob")).map(|f| f.0), Some(Persistence));
    }

    #[test]
    fn parameters_are_flagged_only_when_decrypted() {
        let record = |decrypt: bool| {
            json!({"eventSource": SSM, "eventName": "GetParameters",
                   "requestParameters": {"names": ["/db/password"], "withDecryption": decrypt}})
        };
        assert_eq!(
            flag_record(&record(true)).map(|f| f.0),
            Some(CredentialAccess)
        );
        assert_eq!(flag_record(&record(false)), None);
    }

    #[test]
    fn user_data_changes_are_persistence_other_attributes_are_not() {
        let user_data = json!({"eventSource": EC2, "eventName": "ModifyInstanceAttribute",
            "requestParameters": {"instanceId": "i-0abc", "userData": "<sensitiveDataRemoved>"}});
        let instance_type = json!({"eventSource": EC2, "eventName": "ModifyInstanceAttribute",
            "requestParameters": {"instanceId": "i-0abc", "instanceType": {"value": "t3.large"}}});
        assert_eq!(flag_record(&user_data).map(|f| f.0), Some(Persistence));
        assert_eq!(flag_record(&instance_type), None);
    }
}
