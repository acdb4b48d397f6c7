//! Intake: one message body from the daemon's SQS queue in, the instances to collect (or a
//! refusal that says why) out. Pure: no I/O, no clock, no AWS SDK; the daemon receives, calls
//! [`parse`], and acts on the answer.
//!
//! Three shapes are read, and nothing else:
//!
//! * **forensnap's own request** ([`SubmitRequest`], `"schema": "forensnap.collect-request/1"`),
//!   as `forensnap submit` sends it: one case, one instance, named by a responder.
//! * **a GuardDuty finding** (EventBridge `source` `aws.guardduty`, `detail-type`
//!   `GuardDuty Finding`) about an EC2 instance, collected when the [`IntakeRules`] say its type
//!   and severity trigger collection.
//! * **a Security Hub custom action** (`aws.securityhub`, `Security Hub Findings - Custom
//!   Action`): a person chose the findings and the action, so every EC2 instance the findings
//!   name is collected, one request per distinct (account, region, instance). Imported findings
//!   (`Security Hub Findings - Imported`) are refused: collecting from Security Hub is a human
//!   decision, taken with a custom action.
//!
//! **Case ids.** A submit request names its case. An EventBridge request gets a case id derived
//! from the event, so that a re-delivery (SQS and EventBridge both deliver at least once) lands
//! in the same case:
//!
//! * GuardDuty: `{prefix}-GD-{h}`, `h` the first 12 hex digits of the SHA-256 of the finding id.
//!   GuardDuty's later updates of a finding keep its id, so they land in the same case too.
//! * Security Hub: `{prefix}-SH-{h}`, `h` the first 12 hex digits of the SHA-256 of
//!   `{event id}/{account}/{region}/{instance}`: each use of the action is a decision of its own,
//!   with a case per instance.
//!
//! `prefix` is [`IntakeRules::case_prefix`], at most [`MAX_CASE_PREFIX`] characters so the id
//! stays within 48; [`IntakeRules::check`] refuses a prefix that cannot start a case id (should
//! one reach [`parse`] anyway, the id is `GD-{h}` or `SH-{h}` rather than no collection).
//! 48 bits of hash: two different findings share a case id with odds of about 1 in 5 million
//! after 10,000 cases. The daemon merges requests for one instance, not this module.
//!
//! **Refusals.** A message is checked whole before anything is returned: one malformed instance
//! id or one account outside the config refuses the message, never silently part of it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::case::{CaseId, MAX_CASE_ID};
use crate::custody::sha256_hex;

/// The schema a [`SubmitRequest`] carries; a request naming any other is refused as unknown.
pub const REQUEST_SCHEMA: &str = "forensnap.collect-request/1";

/// Largest body read, in bytes: 256 KiB, the most an EventBridge event can hold (and SQS's
/// maximum message size when this was written); anything larger was sent by neither AWS nor
/// forensnap, and is not worth parsing.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest text carried into a case (a reason, a requester, an id, an action name), in
/// characters: room for a paragraph, bounded so custody records and log lines stay small.
pub const MAX_TEXT_CHARS: usize = 1024;

/// Longest case prefix: `{prefix}-GD-` and 12 hex digits must fit in a 48-character case id.
pub const MAX_CASE_PREFIX: usize = MAX_CASE_ID - 4 - HASH_DIGITS;

/// Hex digits of the hash in a derived case id (48 bits; see the module doc).
const HASH_DIGITS: usize = 12;

const GUARDDUTY_SOURCE: &str = "aws.guardduty";
const GUARDDUTY_FINDING: &str = "GuardDuty Finding";
const SECURITY_HUB_SOURCE: &str = "aws.securityhub";
const CUSTOM_ACTION: &str = "Security Hub Findings - Custom Action";
const IMPORTED: &str = "Security Hub Findings - Imported";
/// `resource.resourceType` of a GuardDuty finding about an EC2 instance.
const GUARDDUTY_INSTANCE: &str = "Instance";
/// `Resources[].Type` of an EC2 instance in the AWS Security Finding Format.
const ASFF_INSTANCE: &str = "AwsEc2Instance";

/// forensnap's own request, as `forensnap submit` sends it. Unknown fields are refused, so a
/// misspelt `reason` is an error rather than silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Always [`REQUEST_SCHEMA`]; a receiver refuses any other.
    pub schema: String,
    /// The case to collect into, as the responder typed it (checked as a [`CaseId`]).
    pub case: String,
    /// The member account that owns the instance (12 digits).
    pub account: String,
    /// The instance to collect (`i-` and 8 or 17 lowercase hex digits).
    pub instance: String,
    /// The instance's region; the daemon's default region when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Why, in the responder's words; recorded with the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked (a name, an address, a ticket); recorded with the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl SubmitRequest {
    /// A request for one instance. Nothing is checked here: the receiver's [`parse`] is the one
    /// check, and a sender can run it on [`SubmitRequest::to_json`] to refuse before sending.
    pub fn new(
        case: &CaseId,
        account: &str,
        instance: &str,
        region: Option<&str>,
        reason: Option<&str>,
        requested_by: Option<&str>,
    ) -> Self {
        SubmitRequest {
            schema: REQUEST_SCHEMA.to_string(),
            case: case.to_string(),
            account: account.to_string(),
            instance: instance.to_string(),
            region: region.map(str::to_string),
            reason: reason.map(str::to_string),
            requested_by: requested_by.map(str::to_string),
        }
    }

    /// The message body: compact JSON, absent options left out.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings cannot fail; an empty body would be refused anyway.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where a request came from: recorded with the case so an auditor sees what started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// `forensnap submit`.
    Submit {
        /// Who asked, as the request says.
        requested_by: Option<String>,
    },
    /// A Security Hub custom action.
    SecurityHub {
        /// The EventBridge event id (one per use of the action).
        event_id: String,
        /// The custom action's name, or its ARN when the event names none.
        action: String,
        /// The ids of the chosen findings that name this instance.
        finding_ids: Vec<String>,
    },
    /// A GuardDuty finding the rules collect.
    #[serde(rename = "guardduty")]
    GuardDuty {
        /// The EventBridge event id.
        event_id: String,
        /// The GuardDuty finding id (kept across the finding's updates).
        finding_id: String,
        /// The finding type, e.g. `Backdoor:EC2/C&CActivity.B!DNS`.
        finding_type: String,
        /// GuardDuty's severity (0.0-10.0; 7.0 and above is high).
        severity: f64,
    },
}

/// One instance to collect, from any of the three shapes; every field already checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRequest {
    /// The case to collect into.
    pub case: CaseId,
    /// The member account that owns the instance; one of [`IntakeRules::accounts`].
    pub account: String,
    /// The instance's region.
    pub region: String,
    /// The instance id.
    pub instance: String,
    /// Why, when the message says (a responder's reason, a custom action's description, a
    /// GuardDuty finding's type and severity).
    pub reason: Option<String>,
    /// Where the request came from.
    pub source: Source,
}

/// What the config allows.
#[derive(Debug, Clone)]
pub struct IntakeRules {
    /// Member accounts in the config; a request for any other is unauthorised.
    pub accounts: Vec<String>,
    /// The region of a submit request that names none.
    pub default_region: String,
    /// GuardDuty finding-type patterns that trigger collection, `*` matching any run of
    /// characters anywhere (`Backdoor:EC2/*`, `CryptoCurrency:EC2/*`); case-sensitive, as
    /// GuardDuty writes types. Empty: no GuardDuty finding triggers collection.
    pub guardduty_types: Vec<String>,
    /// Lowest GuardDuty severity that triggers collection (GuardDuty scores 1.0-10.0; high is
    /// 7.0 and above).
    pub guardduty_min_severity: f64,
    /// Prefix of the case ids made for EventBridge requests, e.g. `IR` (see the module doc).
    pub case_prefix: String,
}

impl IntakeRules {
    /// Whether a GuardDuty finding of this type and severity is collected: at least the minimum
    /// severity, and a type matching one of the patterns.
    pub fn guardduty_triggers(&self, finding_type: &str, severity: f64) -> bool {
        severity >= self.guardduty_min_severity
            && self
                .guardduty_types
                .iter()
                .any(|pattern| wildcard_match(pattern, finding_type))
    }

    /// Check the rules themselves, for the daemon to call once at start-up: every account is a
    /// 12-digit id, the default region looks like a region, the minimum severity is a number,
    /// and the case prefix can start a case id. The error names the setting to fix.
    pub fn check(&self) -> Result<(), String> {
        for account in &self.accounts {
            if !is_account(account) {
                return Err(format!(
                    "accounts: {} is not a 12-digit AWS account id",
                    quoted(account)
                ));
            }
        }
        if !is_region(&self.default_region) {
            return Err(format!(
                "default region {} does not look like an AWS region (for example eu-west-1)",
                quoted(&self.default_region)
            ));
        }
        if !self.guardduty_min_severity.is_finite() {
            return Err("guardduty minimum severity is not a number (for example 7.0)".into());
        }
        let sample = format!("{}-GD-{}", self.case_prefix, "0".repeat(HASH_DIGITS));
        if let Err(err) = CaseId::parse(&sample) {
            return Err(format!(
                "case prefix {} cannot start a case id ({}); use at most {MAX_CASE_PREFIX} letters, digits, '.', '_' or '-', starting with a letter or digit (for example IR)",
                quoted(&self.case_prefix),
                err.why
            ));
        }
        Ok(())
    }
}

/// Why a message is not collected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Not JSON, a required field missing or of the wrong type, or a value that is not what it
    /// claims (case id, account, region, instance id, text with control characters).
    #[error(
        "refused, malformed request: {0}. Next: fix the sender (forensnap submit, or the EventBridge rule that targets the queue) and send the request again"
    )]
    Malformed(String),
    /// JSON, but none of the three shapes.
    #[error(
        "refused, not a collection request: {0}. Next: send only forensnap submit requests, GuardDuty findings and Security Hub custom actions to this queue (check the EventBridge rules that target it)"
    )]
    Unknown(String),
    /// The account is not a member account in the config.
    #[error(
        "refused: account {account} is not a member account in the forensnap config, so nothing is collected from it. Next: if it should be, add it to the config's accounts, deploy the collection role there and send the request again; if not, find out who sent it"
    )]
    Unauthorised {
        /// The account the request named.
        account: String,
    },
    /// A GuardDuty finding (or a Security Hub custom action) the rules do not collect.
    #[error(
        "not collected: {0}. Next: nothing, unless it should be: then widen the GuardDuty rules in the config, or collect the instance with forensnap submit"
    )]
    NotTriggering(String),
}

impl Refusal {
    /// A short stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::Unknown(_) => "unknown",
            Refusal::Unauthorised { .. } => "unauthorised",
            Refusal::NotTriggering(_) => "not-triggering",
        }
    }
}

/// The schema of an [`ItemRequest`]: one volume of a case, queued by the daemon that prepared
/// the case for any daemon to acquire.
pub const ITEM_SCHEMA: &str = "forensnap.item-request/1";

/// One volume of a prepared case, as the daemon that prepared the case queues it. Checked like
/// every request: the case request it carries is checked again, and the item must be a volume id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// Always [`ITEM_SCHEMA`].
    pub schema: String,
    /// The case request the volume belongs to.
    pub request: CaseRequest,
    /// The volume (`vol-` and hex digits).
    pub item: String,
}

impl ItemRequest {
    /// The request for `item` of `request`.
    pub fn new(request: &CaseRequest, item: &str) -> Self {
        ItemRequest {
            schema: ITEM_SCHEMA.to_string(),
            request: request.clone(),
            item: item.to_string(),
        }
    }

    /// The message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Read `body` as an [`ItemRequest`]: `None` when it is not one (then [`parse`] reads it),
/// else the request or why it is refused.
pub fn parse_item(body: &str, rules: &IntakeRules) -> Option<Result<ItemRequest, Refusal>> {
    if body.len() > MAX_BODY_BYTES {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    if value.get("schema").and_then(Value::as_str) != Some(ITEM_SCHEMA) {
        return None;
    }
    let item: ItemRequest = match serde_json::from_value(value) {
        Ok(item) => item,
        Err(err) => {
            return Some(Err(Refusal::Malformed(format!(
                "the item request does not fit its schema ({err}). Next: item requests are queued by forensnap daemons only; find who sent it"
            ))));
        }
    };
    let request = &item.request;
    let checked = authorise(&request.account, rules)
        .and_then(|()| check_account(&request.account, "the item request's account"))
        .and_then(|()| check_region(&request.region, "the item request's region"))
        .and_then(|()| check_instance(&request.instance, "the item request's instance"))
        .and_then(|()| {
            let volume = item
                .item
                .strip_prefix("vol-")
                .is_some_and(|hex| {
                    (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
                });
            if volume {
                Ok(())
            } else {
                Err(Refusal::Malformed(format!(
                    "item {} is not a volume id (vol-...). Next: item requests are queued by forensnap daemons only; find who sent it",
                    quoted(&item.item)
                )))
            }
        });
    Some(checked.map(|()| item))
}

/// Parse one message body into the instances to collect (at least one), or the refusal.
/// Security Hub custom actions can carry several findings and each can name several EC2
/// instances: one [`CaseRequest`] per distinct (account, region, instance), in the order the
/// event first names them.
pub fn parse(body: &str, rules: &IntakeRules) -> Result<Vec<CaseRequest>, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::Malformed(format!(
            "the body is {} bytes, more than the {MAX_BODY_BYTES} (256 KiB) an EventBridge event or a forensnap request can be",
            body.len()
        )));
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|err| Refusal::Malformed(format!("the body is not JSON ({err})")))?;
    let Value::Object(object) = &value else {
        return Err(Refusal::Unknown(format!(
            "the body is JSON {}, not an object",
            kind_of(&value)
        )));
    };
    if let Some(schema) = object.get("schema") {
        let Some(schema) = schema.as_str() else {
            return Err(Refusal::Malformed(format!(
                "\"schema\" is {}, not a string",
                kind_of(schema)
            )));
        };
        if schema != REQUEST_SCHEMA {
            return Err(Refusal::Unknown(format!(
                "a forensnap request of schema {}; this daemon reads {REQUEST_SCHEMA:?}",
                quoted(schema)
            )));
        }
        return submit(value, rules);
    }
    if object.contains_key("source") || object.contains_key("detail-type") {
        return event(&value, rules);
    }
    Err(Refusal::Unknown(format!(
        "a JSON object with neither \"schema\" (a forensnap request) nor \"source\" and \"detail-type\" (an EventBridge event); its keys: {}",
        keys_of(object)
    )))
}

/// A forensnap request whose schema is [`REQUEST_SCHEMA`].
fn submit(value: Value, rules: &IntakeRules) -> Result<Vec<CaseRequest>, Refusal> {
    let request: SubmitRequest = serde_json::from_value(value).map_err(|err| {
        Refusal::Malformed(format!(
            "the forensnap request does not fit its schema ({err})"
        ))
    })?;
    let case = CaseId::parse(&request.case).map_err(|err| Refusal::Malformed(err.to_string()))?;
    check_account(&request.account, "account")?;
    check_instance(&request.instance, "instance")?;
    let region = match request.region {
        Some(region) => {
            check_region(&region, "region")?;
            region
        }
        None => rules.default_region.clone(),
    };
    let reason = optional_text(request.reason, "reason")?;
    let requested_by = optional_text(request.requested_by, "requested_by")?;
    authorise(&request.account, rules)?;
    Ok(vec![CaseRequest {
        case,
        account: request.account,
        region,
        instance: request.instance,
        reason,
        source: Source::Submit { requested_by },
    }])
}

/// An EventBridge event: one of the two read, or refused naming what it is.
fn event(event: &Value, rules: &IntakeRules) -> Result<Vec<CaseRequest>, Refusal> {
    let source = text_at(event, &["source"], "the EventBridge event")?;
    let detail_type = text_at(event, &["detail-type"], "the EventBridge event")?;
    match (source, detail_type) {
        (GUARDDUTY_SOURCE, GUARDDUTY_FINDING) => guardduty(event, rules),
        (SECURITY_HUB_SOURCE, CUSTOM_ACTION) => security_hub(event, rules),
        (SECURITY_HUB_SOURCE, IMPORTED) => Err(Refusal::Unknown(format!(
            "a Security Hub imported finding; forensnap collects from Security Hub only when a person chooses a custom action, so route the rule for {CUSTOM_ACTION:?} events to this queue, not {IMPORTED:?}"
        ))),
        _ => Err(Refusal::Unknown(format!(
            "an EventBridge event from source {} with detail-type {}; forensnap reads {GUARDDUTY_FINDING:?} from {GUARDDUTY_SOURCE} and {CUSTOM_ACTION:?} from {SECURITY_HUB_SOURCE}",
            quoted(source),
            quoted(detail_type)
        ))),
    }
}

/// A GuardDuty finding: collected when it is about an instance and the rules trigger on it.
fn guardduty(event: &Value, rules: &IntakeRules) -> Result<Vec<CaseRequest>, Refusal> {
    const WHOSE: &str = "the GuardDuty finding event";
    let event_id = text_at(event, &["id"], WHOSE)?;
    let finding_id = text_at(event, &["detail", "id"], WHOSE)?;
    let finding_type = text_at(event, &["detail", "type"], WHOSE)?;
    let severity = match at(event, &["detail", "severity"]) {
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| Refusal::Malformed(format!("{WHOSE} has no number at detail.severity")))?;
    let resource_type = text_at(event, &["detail", "resource", "resourceType"], WHOSE)?;
    if resource_type != GUARDDUTY_INSTANCE {
        return Err(Refusal::NotTriggering(format!(
            "GuardDuty finding {finding_id} ({finding_type}) is about a resource of type {}, not an EC2 instance; forensnap collects EC2 instances",
            quoted(resource_type)
        )));
    }
    if is_sample(event) {
        return Err(Refusal::NotTriggering(format!(
            "GuardDuty finding {finding_id} ({finding_type}) is a sample finding (service.additionalInfo says sample: true); its instance does not exist"
        )));
    }
    if !rules.guardduty_triggers(finding_type, severity) {
        return Err(Refusal::NotTriggering(format!(
            "GuardDuty finding {finding_id}: type {finding_type} at severity {severity} is not collected by the rules (types {:?}, minimum severity {})",
            rules.guardduty_types, rules.guardduty_min_severity
        )));
    }
    let account = text_at(event, &["detail", "accountId"], WHOSE)?;
    check_account(account, "detail.accountId")?;
    let region = text_at(event, &["detail", "region"], WHOSE)?;
    check_region(region, "detail.region")?;
    let instance_path = ["detail", "resource", "instanceDetails", "instanceId"];
    let instance = text_at(event, &instance_path, WHOSE)?;
    check_instance(instance, "detail.resource.instanceDetails.instanceId")?;
    authorise(account, rules)?;
    Ok(vec![CaseRequest {
        case: derived_case(&rules.case_prefix, "GD", finding_id)?,
        account: account.to_string(),
        region: region.to_string(),
        instance: instance.to_string(),
        reason: Some(format!(
            "GuardDuty finding {finding_type}, severity {severity}"
        )),
        source: Source::GuardDuty {
            event_id: event_id.to_string(),
            finding_id: finding_id.to_string(),
            finding_type: finding_type.to_string(),
            severity,
        },
    }])
}

/// GuardDuty marks the findings `CreateSampleFindings` makes in `service.additionalInfo`:
/// `sample: true` as EventBridge delivers it, or inside the JSON string `value` as the API does.
fn is_sample(event: &Value) -> bool {
    let Some(info) = at(event, &["detail", "service", "additionalInfo"]) else {
        return false;
    };
    let inner = |key: &str| {
        info.get(key)
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .is_some_and(|value| value.get("sample") == Some(&Value::Bool(true)))
    };
    info.get("sample") == Some(&Value::Bool(true)) || inner("value") || inner("Value")
}

/// One instance named by a custom action's findings, before it becomes a [`CaseRequest`].
struct Target {
    account: String,
    region: String,
    instance: String,
    finding_ids: Vec<String>,
}

/// A Security Hub custom action: every EC2 instance its findings name.
fn security_hub(event: &Value, rules: &IntakeRules) -> Result<Vec<CaseRequest>, Refusal> {
    const WHOSE: &str = "the Security Hub custom action event";
    let event_id = text_at(event, &["id"], WHOSE)?;
    let action = match at(event, &["detail", "actionName"]) {
        Some(Value::String(name)) if !name.is_empty() => name.as_str(),
        // The rule matches on the action's ARN, which EventBridge puts in `resources`.
        _ => text_at(event, &["resources", "0"], WHOSE).map_err(|_| {
            Refusal::Malformed(format!(
                "{WHOSE} names no action (neither detail.actionName nor resources)"
            ))
        })?,
    };
    check_text(action, "the custom action's name")?;
    let reason = match at(event, &["detail", "actionDescription"]) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => optional_text(Some(text.clone()), "detail.actionDescription")?,
        Some(other) => {
            return Err(Refusal::Malformed(format!(
                "{WHOSE} has {} at detail.actionDescription, not a string",
                kind_of(other)
            )));
        }
    };
    let findings = match at(event, &["detail", "findings"]) {
        Some(Value::Array(findings)) => findings,
        _ => {
            return Err(Refusal::Malformed(format!(
                "{WHOSE} has no array at detail.findings"
            )));
        }
    };
    let event_region = at(event, &["region"]).and_then(Value::as_str);

    let mut targets: Vec<Target> = Vec::new();
    let mut other_types: Vec<String> = Vec::new();
    for (index, finding) in findings.iter().enumerate() {
        let whose = format!("finding {index} of {WHOSE}");
        let finding_id = text_at(finding, &["Id"], &whose)?;
        let resources = match finding.get("Resources") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(resources)) => resources.as_slice(),
            Some(other) => {
                return Err(Refusal::Malformed(format!(
                    "{whose} has {} at Resources, not an array",
                    kind_of(other)
                )));
            }
        };
        for resource in resources {
            let resource_type = text_at(resource, &["Type"], &whose)?;
            if resource_type != ASFF_INSTANCE {
                if !other_types.iter().any(|seen| seen == resource_type) {
                    other_types.push(resource_type.to_string());
                }
                continue;
            }
            let id = text_at(resource, &["Id"], &whose)?;
            let (account, region, instance) = ec2_instance(id, finding, event_region, &whose)?;
            match targets.iter_mut().find(|target| {
                target.account == account && target.region == region && target.instance == instance
            }) {
                Some(target) => {
                    if !target.finding_ids.iter().any(|seen| seen == finding_id) {
                        target.finding_ids.push(finding_id.to_string());
                    }
                }
                None => targets.push(Target {
                    account,
                    region,
                    instance,
                    finding_ids: vec![finding_id.to_string()],
                }),
            }
        }
    }
    if targets.is_empty() {
        let types = if other_types.is_empty() {
            "none".to_string()
        } else {
            other_types
                .iter()
                .map(|kind| quoted(kind))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Refusal::NotTriggering(format!(
            "Security Hub custom action {} sent {} finding(s) that name no EC2 instance (resource types: {types}); forensnap collects EC2 instances",
            quoted(action),
            findings.len()
        )));
    }
    for target in &targets {
        authorise(&target.account, rules)?;
    }
    targets
        .into_iter()
        .map(|target| {
            let material = format!(
                "{event_id}/{}/{}/{}",
                target.account, target.region, target.instance
            );
            Ok(CaseRequest {
                case: derived_case(&rules.case_prefix, "SH", &material)?,
                account: target.account,
                region: target.region,
                instance: target.instance,
                reason: reason.clone(),
                source: Source::SecurityHub {
                    event_id: event_id.to_string(),
                    action: action.to_string(),
                    finding_ids: target.finding_ids,
                },
            })
        })
        .collect()
}

/// The (account, region, instance) of an ASFF `AwsEc2Instance` resource id: an ARN
/// `arn:<partition>:ec2:<region>:<account>:instance/i-...`, or a bare instance id as some
/// products write it. What the ARN leaves empty comes from the finding (`AwsAccountId`,
/// `Region`), then from the event's region.
fn ec2_instance(
    id: &str,
    finding: &Value,
    event_region: Option<&str>,
    whose: &str,
) -> Result<(String, String, String), Refusal> {
    let (arn_account, arn_region, instance) = match id.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let instance = match parts.as_slice() {
                [partition, "ec2", _, _, resource] if !partition.is_empty() => {
                    resource.strip_prefix("instance/")
                }
                _ => None,
            };
            let Some(instance) = instance else {
                return Err(Refusal::Malformed(format!(
                    "{whose} has an {ASFF_INSTANCE} resource whose Id {} is not an EC2 instance ARN",
                    quoted(id)
                )));
            };
            let field = |n: usize| parts.get(n).copied().filter(|part| !part.is_empty());
            (field(3), field(2), instance)
        }
        None => (None, None, id),
    };
    let account = arn_account
        .or_else(|| finding.get("AwsAccountId").and_then(Value::as_str))
        .ok_or_else(|| {
            Refusal::Malformed(format!(
                "{whose} names instance {} but no account (no account in the ARN, no AwsAccountId)",
                quoted(instance)
            ))
        })?;
    let region = arn_region
        .or_else(|| finding.get("Region").and_then(Value::as_str))
        .or(event_region)
        .ok_or_else(|| {
            Refusal::Malformed(format!(
                "{whose} names instance {} but no region",
                quoted(instance)
            ))
        })?;
    check_account(account, &format!("the account of {whose}"))?;
    check_region(region, &format!("the region of {whose}"))?;
    check_instance(instance, &format!("the instance of {whose}"))?;
    Ok((
        account.to_string(),
        region.to_string(),
        instance.to_string(),
    ))
}

/// `{prefix}-{tag}-{first 12 hex digits of SHA-256(material)}` (see the module doc); without
/// the prefix when the prefix cannot start a case id.
fn derived_case(prefix: &str, tag: &str, material: &str) -> Result<CaseId, Refusal> {
    let hash: String = sha256_hex(material.as_bytes())
        .chars()
        .take(HASH_DIGITS)
        .collect();
    CaseId::parse(&format!("{prefix}-{tag}-{hash}"))
        .or_else(|_| CaseId::parse(&format!("{tag}-{hash}")))
        .map_err(|err| Refusal::Malformed(err.to_string()))
}

fn authorise(account: &str, rules: &IntakeRules) -> Result<(), Refusal> {
    if rules.accounts.iter().any(|allowed| allowed == account) {
        Ok(())
    } else {
        Err(Refusal::Unauthorised {
            account: account.to_string(),
        })
    }
}

/// The value at `path` (object keys; a digit string also indexes an array), if every step is
/// there.
fn at<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |value, key| match value {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => value.get(key),
    })
}

/// The text at `path`, checked by [`check_text`]; missing or not a string is malformed.
fn text_at<'a>(root: &'a Value, path: &[&str], whose: &str) -> Result<&'a str, Refusal> {
    let dotted = path.join(".");
    match at(root, path) {
        Some(Value::String(text)) => {
            check_text(text, &dotted)?;
            Ok(text)
        }
        Some(other) => Err(Refusal::Malformed(format!(
            "{whose} has {} at {dotted}, not a string",
            kind_of(other)
        ))),
        None => Err(Refusal::Malformed(format!("{whose} has no {dotted}"))),
    }
}

/// Text carried into a case: at most [`MAX_TEXT_CHARS`] characters, no control characters
/// (they would forge lines in logs and records).
fn check_text(text: &str, what: &str) -> Result<(), Refusal> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Refusal::Malformed(format!(
            "{what} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Refusal::Malformed(format!(
            "{what} {} holds a control character (newline, tab, escape ...)",
            quoted(text)
        )));
    }
    Ok(())
}

/// Optional text: checked, and empty taken as absent.
fn optional_text(text: Option<String>, what: &str) -> Result<Option<String>, Refusal> {
    match text {
        Some(text) if !text.is_empty() => {
            check_text(&text, what)?;
            Ok(Some(text))
        }
        _ => Ok(None),
    }
}

fn check_account(account: &str, what: &str) -> Result<(), Refusal> {
    if is_account(account) {
        Ok(())
    } else {
        Err(Refusal::Malformed(format!(
            "{what} {} is not a 12-digit AWS account id",
            quoted(account)
        )))
    }
}

fn check_region(region: &str, what: &str) -> Result<(), Refusal> {
    if is_region(region) {
        Ok(())
    } else {
        Err(Refusal::Malformed(format!(
            "{what} {} does not look like an AWS region (for example eu-west-1)",
            quoted(region)
        )))
    }
}

fn check_instance(instance: &str, what: &str) -> Result<(), Refusal> {
    if is_instance(instance) {
        Ok(())
    } else {
        Err(Refusal::Malformed(format!(
            "{what} {} is not an EC2 instance id (i- and 8 or 17 lowercase hex digits)",
            quoted(instance)
        )))
    }
}

/// Exactly 12 ASCII digits.
fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `i-` and 8 (older) or 17 lowercase hex digits.
fn is_instance(text: &str) -> bool {
    text.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Shaped like an AWS region: two lowercase letters, one or more lowercase words, and a number
/// of one or two digits, joined by dashes (`eu-west-1`, `us-gov-west-1`, `ap-southeast-5`).
/// At most 32 characters.
fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let lower = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [first, words @ .., number] if !words.is_empty() => {
            text.len() <= 32
                && first.len() == 2
                && lower(first)
                && words.iter().all(lower)
                && matches!(number.len(), 1 | 2)
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and
/// everything else matches itself. Greedy with backtracking to the last `*`: linear in practice,
/// at worst the product of the lengths.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0usize, 0usize);
    // After the last `*` seen: where the pattern resumes, and where in the text it was tried.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(c) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((resume, tried)) => {
                    star = Some((resume, tried + 1));
                    p = resume;
                    t = tried + 1;
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Text from a message, quoted and escaped for an error message, cut at 64 characters.
fn quoted(text: &str) -> String {
    let mut cut: String = text.chars().take(64).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// The first keys of an object, quoted, for a refusal.
fn keys_of(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "none".to_string();
    }
    let mut keys: Vec<String> = object.keys().take(8).map(|key| quoted(key)).collect();
    if object.len() > 8 {
        keys.push("…".to_string());
    }
    keys.join(", ")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_anywhere() {
        for (pattern, text) in [
            ("Backdoor:EC2/*", "Backdoor:EC2/C&CActivity.B!DNS"),
            ("Backdoor:EC2/*", "Backdoor:EC2/"),
            ("*:EC2/*", "CryptoCurrency:EC2/BitcoinTool.B"),
            ("*BruteForce", "UnauthorizedAccess:EC2/SSHBruteForce"),
            (
                "Trojan:EC2/DNSDataExfiltration",
                "Trojan:EC2/DNSDataExfiltration",
            ),
            ("*", ""),
            ("a*b*c", "aXbYbZc"),
            ("**", "anything"),
        ] {
            assert!(wildcard_match(pattern, text), "{pattern} ~ {text}");
        }
        for (pattern, text) in [
            ("Backdoor:EC2/*", "Backdoor:EC2"),
            ("Backdoor:EC2/*", "backdoor:EC2/Spambot"),
            ("Backdoor:EC2/*", "Recon:EC2/Portscan"),
            ("*BruteForce", "UnauthorizedAccess:EC2/SSHBruteForce.B"),
            (
                "Trojan:EC2/DNSDataExfiltration",
                "Trojan:EC2/DNSDataExfiltration!DNS",
            ),
            ("", "x"),
            ("a*b*c", "aXbYbZ"),
        ] {
            assert!(!wildcard_match(pattern, text), "{pattern} !~ {text}");
        }
    }

    #[test]
    fn ids_and_regions_are_recognised() {
        assert!(is_account("111122223333"));
        for bad in [
            "11112222333",
            "1111222233334",
            "11112222333a",
            "",
            "１１１122223333",
        ] {
            assert!(!is_account(bad), "{bad}");
        }
        assert!(is_instance("i-0c10c2c7863d1a356"));
        assert!(is_instance("i-99999999"));
        for bad in [
            "i-0C10C2C7863D1A356",
            "i-0c10c2c7863d1a35",
            "i-1234567",
            "i-123456789",
            "i-0c10c2c7863d1a35g",
            "vol-0c10c2c7863d1a356",
            "i-",
            "",
        ] {
            assert!(!is_instance(bad), "{bad}");
        }
        for good in [
            "eu-west-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "cn-north-1",
            "us-isob-east-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "EU-west-1",
            "eu-west",
            "eu-1",
            "eu-west-123",
            "eu--west-1",
            "eu-west-1 ",
            "e-west-1",
            "eu-west-1a",
            "../../etc",
            "",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn quoting_escapes_and_cuts() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(100);
        assert_eq!(quoted(&long).chars().count(), 64 + 3);
    }
}
