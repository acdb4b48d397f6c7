//! The daemon's intake: realistic message bodies (`fixtures/intake/`, shapes from AWS's
//! documented examples) read into case requests or refused with the right reason; derived case
//! ids stable across re-delivery; and `parse` fed arbitrary text, byte-mutated and JSON-mutated
//! bodies (proptest) never panics, and whatever it accepts is checked.

use forensnap_core::CaseId;
use forensnap_core::intake::{
    CaseRequest, IntakeRules, MAX_BODY_BYTES, REQUEST_SCHEMA, Refusal, Source, SubmitRequest, parse,
};
use forensnap_core::sha256_hex;
use proptest::prelude::*;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intake");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const ALL_FIXTURES: [&str; 8] = [
    "submit.json",
    "guardduty-backdoor-instance.json",
    "guardduty-recon-low.json",
    "guardduty-s3.json",
    "securityhub-action-two-instances.json",
    "securityhub-action-one-instance.json",
    "securityhub-action-no-instance.json",
    "securityhub-imported.json",
];

fn rules() -> IntakeRules {
    IntakeRules {
        accounts: vec!["111122223333".into(), "444455556666".into()],
        default_region: "eu-west-1".into(),
        guardduty_types: vec![
            "Backdoor:EC2/*".into(),
            "CryptoCurrency:EC2/*".into(),
            "UnauthorizedAccess:EC2/*".into(),
        ],
        guardduty_min_severity: 7.0,
        case_prefix: "IR".into(),
    }
}

fn case(id: &str) -> CaseId {
    CaseId::parse(id).expect("valid case id")
}

/// `{prefix}-{tag}-` and the first 12 hex digits of SHA-256(material): the documented rule.
fn derived(tag: &str, material: &str) -> CaseId {
    case(&format!(
        "IR-{tag}-{}",
        &sha256_hex(material.as_bytes())[..12]
    ))
}

fn parse_value(value: &Value) -> Result<Vec<CaseRequest>, Refusal> {
    parse(&value.to_string(), &rules())
}

fn refused(body: &str) -> Refusal {
    parse(body, &rules()).expect_err("refused")
}

/// Set the value at a JSON pointer, adding the last key when the parent object lacks it.
fn set(value: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = new;
        return;
    }
    let (parent, key) = pointer
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{pointer}"));
    let parent = value.pointer_mut(parent).and_then(Value::as_object_mut);
    parent
        .unwrap_or_else(|| panic!("{pointer}"))
        .insert(key.to_string(), new);
}

// ---- forensnap submit ----------------------------------------------------------------------

#[test]
fn a_submit_request_reads_as_one_case_request() {
    let requests = parse(&fixture("submit.json"), &rules()).expect("accepted");
    assert_eq!(
        requests,
        vec![CaseRequest {
            case: case("IR-2026-0042"),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            instance: "i-0c10c2c7863d1a356".into(),
            reason: Some(
                "Outbound connections to a known C2 domain reported by the SOC; preserve before the ASG replaces the instance".into()
            ),
            source: Source::Submit {
                requested_by: Some("alice@example.com (INC-4711)".into())
            },
        }]
    );
}

#[test]
fn what_submit_sends_is_what_the_daemon_reads() {
    let request = SubmitRequest::new(
        &case("IR-2026-0043"),
        "444455556666",
        "i-99999999",
        None,
        Some("suspected miner"),
        None,
    );
    let body = request.to_json();
    assert!(body.contains(REQUEST_SCHEMA), "{body}");
    assert!(
        !body.contains("region"),
        "absent options are left out: {body}"
    );
    let back: SubmitRequest = serde_json::from_str(&body).expect("round trip");
    assert_eq!(back, request);

    let requests = parse(&body, &rules()).expect("accepted");
    assert_eq!(requests.len(), 1);
    let only = &requests[0];
    assert_eq!(only.case, case("IR-2026-0043"));
    assert_eq!(only.region, "eu-west-1", "no region: the default region");
    assert_eq!(only.reason.as_deref(), Some("suspected miner"));
    assert_eq!(only.source, Source::Submit { requested_by: None });
}

#[test]
fn a_submit_request_with_an_unknown_field_is_malformed() {
    let mut body = fixture_json("submit.json");
    set(&mut body, "/reson", json!("typo"));
    let refusal = parse_value(&body).expect_err("refused");
    assert_eq!(refusal.code(), "malformed");
    assert!(refusal.to_string().contains("reson"), "{refusal}");
}

#[test]
fn a_submit_request_of_another_schema_is_unknown_and_named() {
    let mut body = fixture_json("submit.json");
    set(&mut body, "/schema", json!("forensnap.collect-request/2"));
    let refusal = parse_value(&body).expect_err("refused");
    assert_eq!(refusal.code(), "unknown");
    assert!(
        refusal.to_string().contains("forensnap.collect-request/2"),
        "{refusal}"
    );
    assert!(refusal.to_string().contains(REQUEST_SCHEMA), "{refusal}");

    set(&mut body, "/schema", json!(1));
    assert_eq!(parse_value(&body).expect_err("refused").code(), "malformed");
}

#[test]
fn a_submit_request_missing_a_field_or_with_a_wrong_type_is_malformed() {
    for (pointer, value) in [
        ("/case", Value::Null),
        ("/account", json!(111122223333_u64)),
        ("/instance", json!(["i-0c10c2c7863d1a356"])),
        ("/reason", json!(42)),
    ] {
        let mut body = fixture_json("submit.json");
        set(&mut body, pointer, value);
        assert_eq!(
            parse_value(&body).expect_err(pointer).code(),
            "malformed",
            "{pointer}"
        );
    }
    let mut body = fixture_json("submit.json");
    body.as_object_mut().expect("object").remove("instance");
    let refusal = parse_value(&body).expect_err("refused");
    assert!(refusal.to_string().contains("instance"), "{refusal}");
}

#[test]
fn bad_values_in_a_submit_request_are_malformed_and_named() {
    let too_long = "x".repeat(1025);
    for (pointer, value, named) in [
        ("/case", "-IR-1", "case id"),
        ("/case", "IR 1", "case id"),
        ("/account", "11112222333", "account"),
        ("/account", "1111-2222-3333", "account"),
        ("/instance", "i-0C10C2C7863D1A356", "instance"),
        ("/instance", "i-123", "instance"),
        ("/instance", "vol-0c10c2c7863d1a356", "instance"),
        ("/instance", "i-0c10c2c7863d1a356 ", "instance"),
        ("/region", "US-EAST-1", "region"),
        ("/region", "us-east-1/../../", "region"),
        ("/region", "useast1", "region"),
        ("/reason", "line one\nforged: line two", "reason"),
        ("/reason", "bell\u{7}", "reason"),
        ("/reason", too_long.as_str(), "reason"),
        ("/requested_by", "eve\u{1b}[2J", "requested_by"),
    ] {
        let mut body = fixture_json("submit.json");
        set(&mut body, pointer, json!(value));
        let refusal = parse_value(&body).expect_err(pointer);
        assert_eq!(
            refusal.code(),
            "malformed",
            "{pointer} {value:?}: {refusal}"
        );
        assert!(refusal.to_string().contains(named), "{pointer}: {refusal}");
    }
    // 1024 characters (not bytes) is the limit.
    let mut body = fixture_json("submit.json");
    set(&mut body, "/reason", json!("é".repeat(1024)));
    assert!(parse_value(&body).is_ok());
}

#[test]
fn an_account_outside_the_config_is_unauthorised() {
    let mut body = fixture_json("submit.json");
    set(&mut body, "/account", json!("999999999999"));
    let refusal = parse_value(&body).expect_err("refused");
    assert_eq!(
        refusal,
        Refusal::Unauthorised {
            account: "999999999999".into()
        }
    );
    assert_eq!(refusal.code(), "unauthorised");
    assert!(refusal.to_string().contains("999999999999"), "{refusal}");
    assert!(refusal.to_string().contains("Next:"), "{refusal}");
}

// ---- GuardDuty -----------------------------------------------------------------------------

const BACKDOOR: &str = "guardduty-backdoor-instance.json";

#[test]
fn a_high_severity_guardduty_finding_on_an_instance_is_collected() {
    let requests = parse(&fixture(BACKDOOR), &rules()).expect("accepted");
    assert_eq!(
        requests,
        vec![CaseRequest {
            case: derived("GD", "a6c4f1e2b8d93a7f5e0c2b1d4f6a8e90"),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            instance: "i-0c10c2c7863d1a356".into(),
            reason: Some("GuardDuty finding Backdoor:EC2/C&CActivity.B!DNS, severity 8".into()),
            source: Source::GuardDuty {
                event_id: "cd2d702e-ab31-411b-9344-793ce56b1bc7".into(),
                finding_id: "a6c4f1e2b8d93a7f5e0c2b1d4f6a8e90".into(),
                finding_type: "Backdoor:EC2/C&CActivity.B!DNS".into(),
                severity: 8.0,
            },
        }]
    );
    assert!(requests[0].case.as_str().len() <= 48);
}

#[test]
fn a_redelivered_or_updated_guardduty_finding_lands_in_the_same_case() {
    let first = parse(&fixture(BACKDOOR), &rules()).expect("accepted");
    let again = parse(&fixture(BACKDOOR), &rules()).expect("accepted");
    assert_eq!(first, again);

    // GuardDuty's update of the same finding: a new event, more occurrences, the same finding id.
    let mut update = fixture_json(BACKDOOR);
    set(
        &mut update,
        "/id",
        json!("5e1c7a0b-92d4-4f3e-8c61-0a7b3d9e2f14"),
    );
    set(&mut update, "/detail/service/count", json!(19));
    set(
        &mut update,
        "/detail/updatedAt",
        json!("2026-03-14T15:22:05.374Z"),
    );
    let updated = parse_value(&update).expect("accepted");
    assert_eq!(updated[0].case, first[0].case);

    // Another finding about the same instance: another case (the daemon merges by instance).
    let mut other = fixture_json(BACKDOOR);
    set(
        &mut other,
        "/detail/id",
        json!("00c4f1e2b8d93a7f5e0c2b1d4f6a8e91"),
    );
    assert_ne!(
        parse_value(&other).expect("accepted")[0].case,
        first[0].case
    );
}

#[test]
fn a_guardduty_finding_below_the_minimum_severity_is_not_triggering() {
    let mut body = fixture_json(BACKDOOR);
    set(&mut body, "/detail/severity", json!(5.0));
    let refusal = parse_value(&body).expect_err("refused");
    assert_eq!(refusal.code(), "not-triggering");
    let text = refusal.to_string();
    assert!(
        text.contains("severity 5") && text.contains("minimum severity 7"),
        "{text}"
    );

    // Exactly the minimum triggers.
    set(&mut body, "/detail/severity", json!(7.0));
    assert!(parse_value(&body).is_ok());
}

#[test]
fn a_guardduty_finding_of_an_untriggered_type_is_not_triggering() {
    let refusal = refused(&fixture("guardduty-recon-low.json"));
    assert_eq!(refusal.code(), "not-triggering");
    assert!(
        refusal
            .to_string()
            .contains("Recon:EC2/PortProbeUnprotectedPort"),
        "{refusal}"
    );

    // Severity alone does not trigger: a high-severity Recon finding is still not collected.
    let mut body = fixture_json("guardduty-recon-low.json");
    set(&mut body, "/detail/severity", json!(8.9));
    assert_eq!(
        parse_value(&body).expect_err("refused").code(),
        "not-triggering"
    );

    // No patterns: nothing triggers.
    let none = IntakeRules {
        guardduty_types: vec![],
        ..rules()
    };
    assert_eq!(
        parse(&fixture(BACKDOOR), &none)
            .expect_err("refused")
            .code(),
        "not-triggering"
    );
}

#[test]
fn a_guardduty_finding_about_an_s3_bucket_is_not_triggering() {
    let everything = IntakeRules {
        guardduty_types: vec!["*".into()],
        guardduty_min_severity: 0.0,
        ..rules()
    };
    let refusal = parse(&fixture("guardduty-s3.json"), &everything).expect_err("refused");
    assert_eq!(refusal.code(), "not-triggering");
    let text = refusal.to_string();
    assert!(
        text.contains("S3Bucket") && text.contains("not an EC2 instance"),
        "{text}"
    );
}

#[test]
fn a_guardduty_sample_finding_is_not_triggering() {
    for info in [
        json!({ "sample": true, "type": "default", "value": "{\"sample\":true}" }),
        json!({ "type": "default", "value": "{\"threatListName\":\"GeneratedFindingThreatListName\",\"sample\":true}" }),
    ] {
        let mut body = fixture_json(BACKDOOR);
        set(&mut body, "/detail/service/additionalInfo", info);
        let refusal = parse_value(&body).expect_err("refused");
        assert_eq!(refusal.code(), "not-triggering");
        assert!(refusal.to_string().contains("sample"), "{refusal}");
    }
}

#[test]
fn a_guardduty_finding_in_an_account_outside_the_config_is_unauthorised() {
    let mut body = fixture_json(BACKDOOR);
    set(&mut body, "/detail/accountId", json!("777766665555"));
    assert_eq!(
        parse_value(&body).expect_err("refused"),
        Refusal::Unauthorised {
            account: "777766665555".into()
        }
    );
}

#[test]
fn a_guardduty_finding_with_bad_or_missing_fields_is_malformed() {
    for (pointer, value, named) in [
        (
            "/detail/resource/instanceDetails/instanceId",
            json!("i-99999999z"),
            "instanceId",
        ),
        (
            "/detail/resource/instanceDetails/instanceId",
            Value::Null,
            "instanceId",
        ),
        ("/detail/resource/instanceDetails", json!({}), "instanceId"),
        ("/detail/accountId", json!("11112222333"), "accountId"),
        ("/detail/region", json!("us_east_1"), "region"),
        ("/detail/severity", json!("8"), "severity"),
        (
            "/detail/type",
            json!(["Backdoor:EC2/Spambot"]),
            "detail.type",
        ),
        ("/detail/id", json!("a6c4\nforged"), "detail.id"),
        ("/id", Value::Null, "id"),
    ] {
        let mut body = fixture_json(BACKDOOR);
        set(&mut body, pointer, value);
        let refusal = parse_value(&body).expect_err(pointer);
        assert_eq!(refusal.code(), "malformed", "{pointer}: {refusal}");
        assert!(refusal.to_string().contains(named), "{pointer}: {refusal}");
    }
    let mut body = fixture_json(BACKDOOR);
    body.as_object_mut().expect("object").remove("detail");
    assert_eq!(parse_value(&body).expect_err("refused").code(), "malformed");
}

// ---- Security Hub --------------------------------------------------------------------------

const TWO: &str = "securityhub-action-two-instances.json";
const ONE: &str = "securityhub-action-one-instance.json";
const ACTION: &str = "forensnap collect";
const ACTION_DESCRIPTION: &str =
    "Preserve the EC2 instances of the selected findings as forensic evidence (forensnap)";
const SSH_FINDING: &str = "arn:aws:guardduty:us-east-1:111122223333:detector/d4b040365221be2b54a6264dc9a4bc64/finding/46ba0ac2845071e23ccdeb2ae03bfdea";

#[test]
fn a_custom_action_on_two_findings_about_two_instances_gives_two_requests() {
    let event = "1a1111a1-b22b-3c33-444d-5555e5ee5555";
    let requests = parse(&fixture(TWO), &rules()).expect("accepted");
    assert_eq!(
        requests,
        vec![
            CaseRequest {
                case: derived("SH", &format!("{event}/111122223333/us-east-1/i-0c10c2c7863d1a356")),
                account: "111122223333".into(),
                region: "us-east-1".into(),
                instance: "i-0c10c2c7863d1a356".into(),
                reason: Some(ACTION_DESCRIPTION.into()),
                source: Source::SecurityHub {
                    event_id: event.into(),
                    action: ACTION.into(),
                    finding_ids: vec![SSH_FINDING.into()],
                },
            },
            CaseRequest {
                case: derived("SH", &format!("{event}/444455556666/eu-west-1/i-0f1e2d3c4b5a69788")),
                // From the instance's ARN: not the administrator account or region of the event.
                account: "444455556666".into(),
                region: "eu-west-1".into(),
                instance: "i-0f1e2d3c4b5a69788".into(),
                reason: Some(ACTION_DESCRIPTION.into()),
                source: Source::SecurityHub {
                    event_id: event.into(),
                    action: ACTION.into(),
                    finding_ids: vec!["arn:aws:guardduty:eu-west-1:444455556666:detector/8ab4c2d6e0f1a3b5c7d9e1f3a5b7c9d1/finding/9c1e3a5b7d9f2e4c6a8b0d1f3e5a7c9b".into()],
                },
            },
        ]
    );
}

#[test]
fn a_custom_action_on_two_findings_about_one_instance_gives_one_request() {
    let requests = parse(&fixture(ONE), &rules()).expect("accepted");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let only = &requests[0];
    assert_eq!(only.instance, "i-0c10c2c7863d1a356");
    assert_eq!(
        only.source,
        Source::SecurityHub {
            event_id: "7b2c4d6e-8f0a-4b1c-9d3e-5f7a9b1c3d5e".into(),
            action: ACTION.into(),
            finding_ids: vec![
                SSH_FINDING.into(),
                "arn:aws:securityhub:us-east-1:111122223333:security-control/EC2.8/finding/3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
            ],
        }
    );
}

#[test]
fn a_redelivered_custom_action_lands_in_the_same_cases_and_a_new_one_in_new_cases() {
    let first = parse(&fixture(TWO), &rules()).expect("accepted");
    assert_eq!(parse(&fixture(TWO), &rules()).expect("accepted"), first);
    assert_ne!(first[0].case, first[1].case);

    let mut again = fixture_json(TWO);
    set(
        &mut again,
        "/id",
        json!("2b2222b2-c33c-4d44-555e-6666f6ff6666"),
    );
    let second = parse_value(&again).expect("accepted");
    assert_ne!(
        second[0].case, first[0].case,
        "a second use of the action is a new decision"
    );
}

#[test]
fn a_custom_action_naming_no_instance_is_not_triggering() {
    let refusal = refused(&fixture("securityhub-action-no-instance.json"));
    assert_eq!(refusal.code(), "not-triggering");
    let text = refusal.to_string();
    assert!(
        text.contains("AwsS3Bucket") && text.contains("AwsIamAccessKey"),
        "{text}"
    );
    assert!(
        text.contains("forensnap submit"),
        "says what to do next: {text}"
    );

    let mut empty = fixture_json(TWO);
    set(&mut empty, "/detail/findings", json!([]));
    assert_eq!(
        parse_value(&empty).expect_err("refused").code(),
        "not-triggering"
    );
}

#[test]
fn a_finding_without_an_instance_is_skipped_beside_one_with() {
    let mut body = fixture_json(TWO);
    let s3 = fixture_json("securityhub-action-no-instance.json")["detail"]["findings"][0].clone();
    body["detail"]["findings"]
        .as_array_mut()
        .expect("findings")
        .insert(1, s3);
    assert_eq!(parse_value(&body).expect("accepted").len(), 2);
}

#[test]
fn a_custom_action_with_one_instance_outside_the_config_is_refused_whole() {
    let only_first = IntakeRules {
        accounts: vec!["111122223333".into()],
        ..rules()
    };
    assert_eq!(
        parse(&fixture(TWO), &only_first).expect_err("refused"),
        Refusal::Unauthorised {
            account: "444455556666".into()
        }
    );
}

#[test]
fn instance_account_and_region_come_from_the_arn_else_the_finding() {
    // A bare instance id (as some products write it): the finding's account and region.
    let mut body = fixture_json(TWO);
    set(
        &mut body,
        "/detail/findings/1/Resources/0/Id",
        json!("i-0f1e2d3c4b5a69788"),
    );
    let requests = parse_value(&body).expect("accepted");
    assert_eq!(
        (requests[1].account.as_str(), requests[1].region.as_str()),
        ("444455556666", "eu-west-1")
    );
    // An ARN without region or account: the same.
    set(
        &mut body,
        "/detail/findings/1/Resources/0/Id",
        json!("arn:aws:ec2:::instance/i-0f1e2d3c4b5a69788"),
    );
    assert_eq!(parse_value(&body).expect("accepted"), requests);
    // Neither the ARN nor the finding names a region: the event's.
    body["detail"]["findings"][1]
        .as_object_mut()
        .expect("finding")
        .remove("Region");
    assert_eq!(parse_value(&body).expect("accepted")[1].region, "us-east-1");
}

#[test]
fn a_custom_action_with_a_bad_instance_is_malformed() {
    for id in [
        "arn:aws:ec2:eu-west-1:444455556666:instance/i-0F1E2D3C4B5A69788",
        "arn:aws:ec2:eu-west-1:444455556666:volume/vol-0f1e2d3c4b5a69788",
        "arn:aws:s3:::example-customer-exports",
        "arn:aws:ec2:eu-west-1:4444555566:instance/i-0f1e2d3c4b5a69788",
        "arn:aws:ec2:EU-WEST-1:444455556666:instance/i-0f1e2d3c4b5a69788",
        "arn:aws:ec2",
        "",
    ] {
        let mut body = fixture_json(TWO);
        set(&mut body, "/detail/findings/1/Resources/0/Id", json!(id));
        let refusal = parse_value(&body).expect_err(id);
        assert_eq!(refusal.code(), "malformed", "{id}: {refusal}");
        assert!(refusal.to_string().contains("finding 1"), "{id}: {refusal}");
    }
    let mut body = fixture_json(TWO);
    set(&mut body, "/detail/findings", json!({ "Id": "x" }));
    assert_eq!(parse_value(&body).expect_err("refused").code(), "malformed");
}

#[test]
fn the_action_is_named_by_its_name_else_its_arn() {
    let mut body = fixture_json(ONE);
    body["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("actionName");
    body["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("actionDescription");
    let requests = parse_value(&body).expect("accepted");
    let Source::SecurityHub { action, .. } = &requests[0].source else {
        panic!("{:?}", requests[0].source)
    };
    assert_eq!(
        action,
        "arn:aws:securityhub:us-east-1:999988887777:action/custom/ForensnapCollect"
    );
    assert_eq!(requests[0].reason, None);
}

#[test]
fn imported_security_hub_findings_are_unknown_with_a_hint() {
    let refusal = refused(&fixture("securityhub-imported.json"));
    assert_eq!(refusal.code(), "unknown");
    let text = refusal.to_string();
    assert!(
        text.contains("imported") && text.contains("Custom Action"),
        "{text}"
    );
}

// ---- anything else -------------------------------------------------------------------------

#[test]
fn other_events_and_shapes_are_unknown_and_named() {
    let ec2_state = json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
        "account": "111122223333", "time": "2026-03-14T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:111122223333:instance/i-0c10c2c7863d1a356"],
        "detail": { "instance-id": "i-0c10c2c7863d1a356", "state": "stopping" }
    });
    let refusal = parse_value(&ec2_state).expect_err("refused");
    assert_eq!(refusal.code(), "unknown");
    let text = refusal.to_string();
    assert!(
        text.contains("aws.ec2") && text.contains("EC2 Instance State-change Notification"),
        "{text}"
    );

    let mut runtime = fixture_json(BACKDOOR);
    set(
        &mut runtime,
        "/detail-type",
        json!("GuardDuty Runtime Protection Unhealthy"),
    );
    assert_eq!(
        parse_value(&runtime).expect_err("refused").code(),
        "unknown"
    );

    // An SNS notification (raw message delivery off) names its keys.
    let sns = json!({ "Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t", "Message": "{}" });
    let refusal = parse_value(&sns).expect_err("refused");
    assert_eq!(refusal.code(), "unknown");
    assert!(refusal.to_string().contains("\"TopicArn\""), "{refusal}");

    for body in ["[]", "42", "\"text\"", "null", "{}"] {
        assert_eq!(refused(body).code(), "unknown", "{body}");
    }
}

#[test]
fn non_json_and_oversized_bodies_are_malformed() {
    for body in ["", "{", "not json", "{\"schema\": }", "\u{feff}{}"] {
        assert_eq!(refused(body).code(), "malformed", "{body:?}");
    }
    // Deep nesting is refused by the JSON reader's depth limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(refused(&deep).code(), "malformed");

    let mut big = fixture_json("submit.json");
    set(&mut big, "/reason", json!("a".repeat(MAX_BODY_BYTES)));
    let refusal = parse_value(&big).expect_err("refused");
    assert_eq!(refusal.code(), "malformed");
    assert!(refusal.to_string().contains("256 KiB"), "{refusal}");
}

#[test]
fn every_refusal_names_its_next_step() {
    let refusals = [
        refused("{"),
        refused("[]"),
        refused(&fixture("guardduty-recon-low.json")),
        Refusal::Unauthorised {
            account: "999999999999".into(),
        },
    ];
    let codes: Vec<&str> = refusals.iter().map(Refusal::code).collect();
    assert_eq!(
        codes,
        ["malformed", "unknown", "not-triggering", "unauthorised"]
    );
    for refusal in refusals {
        assert!(refusal.to_string().contains("Next:"), "{refusal}");
    }
}

#[test]
fn sources_serialise_with_their_kind() {
    let kinds: Vec<Value> = [
        parse(&fixture("submit.json"), &rules()),
        parse(&fixture(TWO), &rules()),
        parse(&fixture(BACKDOOR), &rules()),
    ]
    .into_iter()
    .map(|requests| {
        serde_json::to_value(&requests.expect("accepted")[0].source).expect("json")["kind"].clone()
    })
    .collect();
    assert_eq!(
        kinds,
        [json!("submit"), json!("security-hub"), json!("guardduty")]
    );

    let request = &parse(&fixture(BACKDOOR), &rules()).expect("accepted")[0];
    let text = serde_json::to_string(request).expect("json");
    let back: CaseRequest = serde_json::from_str(&text).expect("read back");
    assert_eq!(&back, request);
}

#[test]
fn the_rules_check_themselves() {
    assert_eq!(rules().check(), Ok(()));
    let longest = "P".repeat(forensnap_core::intake::MAX_CASE_PREFIX);
    assert_eq!(
        IntakeRules {
            case_prefix: longest.clone(),
            ..rules()
        }
        .check(),
        Ok(())
    );
    let long = IntakeRules {
        case_prefix: format!("{longest}P"),
        ..rules()
    };
    assert!(long.check().expect_err("too long").contains("case prefix"));
    for bad in [
        IntakeRules {
            case_prefix: String::new(),
            ..rules()
        },
        IntakeRules {
            case_prefix: "IR/2026".into(),
            ..rules()
        },
        IntakeRules {
            default_region: "Ireland".into(),
            ..rules()
        },
        IntakeRules {
            accounts: vec!["1111-2222-3333".into()],
            ..rules()
        },
        IntakeRules {
            guardduty_min_severity: f64::NAN,
            ..rules()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    // A prefix that cannot start a case id still collects, under the bare tag.
    let requests = parse(&fixture(BACKDOOR), &long).expect("accepted");
    assert!(
        requests[0].case.as_str().starts_with("GD-"),
        "{}",
        requests[0].case
    );
}

#[test]
fn every_fixture_is_read_or_refused_as_documented() {
    let outcomes: Vec<String> = ALL_FIXTURES
        .iter()
        .map(|name| match parse(&fixture(name), &rules()) {
            Ok(requests) => format!("{name}: {} request(s)", requests.len()),
            Err(refusal) => format!("{name}: {}", refusal.code()),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "submit.json: 1 request(s)",
            "guardduty-backdoor-instance.json: 1 request(s)",
            "guardduty-recon-low.json: not-triggering",
            "guardduty-s3.json: not-triggering",
            "securityhub-action-two-instances.json: 2 request(s)",
            "securityhub-action-one-instance.json: 1 request(s)",
            "securityhub-action-no-instance.json: not-triggering",
            "securityhub-imported.json: unknown",
        ]
    );
}

// ---- never panics --------------------------------------------------------------------------

/// One of the fixtures with up to 8 bytes changed, inserted or removed (lossily back to text).
fn byte_mutated() -> impl Strategy<Value = String> {
    (0..ALL_FIXTURES.len()).prop_flat_map(|pick| {
        let original = fixture(ALL_FIXTURES[pick]).into_bytes();
        let len = original.len();
        prop::collection::vec((0..=len, any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
            let mut bytes = original.clone();
            for (at, byte, how) in edits {
                let at = at.min(bytes.len());
                match how {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(byte),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

/// Strings that matter to intake: ids of every kind, near misses, types, and junk.
fn interesting_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("Instance")),
        Just(json!("AwsEc2Instance")),
        Just(json!("i-0c10c2c7863d1a356")),
        Just(json!("i-99999999")),
        Just(json!("111122223333")),
        Just(json!("999999999999")),
        Just(json!("us-east-1")),
        Just(json!(
            "arn:aws:ec2:eu-west-1:444455556666:instance/i-0f1e2d3c4b5a69788"
        )),
        Just(json!("arn:aws:ec2::::")),
        Just(json!("Backdoor:EC2/Spambot")),
        Just(json!("forensnap.collect-request/1")),
        Just(json!("aws.guardduty")),
        Just(json!("GuardDuty Finding")),
        Just(json!("aws.securityhub")),
        Just(json!("Security Hub Findings - Custom Action")),
        "\\PC{0,40}".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ]
}

/// Any JSON value, leaning towards the keys and strings intake reads.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-20.0f64..20.0).prop_map(Value::from),
        interesting_string(),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "schema",
            "case",
            "account",
            "instance",
            "region",
            "reason",
            "requested_by",
            "id",
            "source",
            "detail-type",
            "detail",
            "resources",
            "accountId",
            "type",
            "severity",
            "resource",
            "resourceType",
            "instanceDetails",
            "instanceId",
            "service",
            "additionalInfo",
            "sample",
            "value",
            "actionName",
            "actionDescription",
            "findings",
            "Id",
            "AwsAccountId",
            "Region",
            "Resources",
            "Type",
        ])
        .prop_map(str::to_string),
        "\\PC{0,8}",
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A fixture with the value at one of its paths replaced by `new`, or `new` inserted under a
/// new key or array slot.
fn json_mutated(original: Value, path_pick: usize, new: Value) -> Value {
    fn paths(value: &Value, here: String, out: &mut Vec<String>) {
        out.push(here.clone());
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    paths(child, format!("{here}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    paths(child, format!("{here}/{index}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(&original, String::new(), &mut all);
    let mut mutated = original;
    let pointer = all[path_pick % all.len()].clone();
    if let Some(slot) = mutated.pointer_mut(&pointer) {
        match slot {
            Value::Object(map) if path_pick.is_multiple_of(3) => {
                map.insert("extra".into(), new);
            }
            Value::Array(items) if path_pick.is_multiple_of(3) => items.push(new),
            _ => *slot = new,
        }
    }
    mutated
}

/// What any accepted request must be, whatever the input.
fn assert_checked(requests: &[CaseRequest], rules: &IntakeRules) -> Result<(), TestCaseError> {
    prop_assert!(!requests.is_empty());
    for request in requests {
        prop_assert!(rules.accounts.contains(&request.account), "{request:?}");
        let hex = request.instance.strip_prefix("i-").unwrap_or("");
        prop_assert!(
            matches!(hex.len(), 8 | 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{request:?}"
        );
        prop_assert!(
            request
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{request:?}"
        );
        prop_assert!(request.case.as_str().len() <= 48, "{request:?}");
        if let Some(reason) = &request.reason {
            prop_assert!(!reason.chars().any(char::is_control), "{request:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_any_text(
        body in prop_oneof!["\\PC{0,600}", ".{0,600}", any::<String>()],
    ) {
        if let Ok(requests) = parse(&body, &rules()) {
            assert_checked(&requests, &rules())?;
        }
    }

    #[test]
    fn parse_never_panics_on_byte_mutated_bodies(body in byte_mutated()) {
        if let Ok(requests) = parse(&body, &rules()) {
            assert_checked(&requests, &rules())?;
        }
    }

    #[test]
    fn parse_never_panics_on_json_mutated_bodies(
        pick in 0..ALL_FIXTURES.len(),
        path_pick in any::<usize>(),
        new in json_value(),
    ) {
        let body = json_mutated(fixture_json(ALL_FIXTURES[pick]), path_pick, new);
        if let Ok(requests) = parse(&body.to_string(), &rules()) {
            assert_checked(&requests, &rules())?;
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_json(value in json_value()) {
        if let Ok(requests) = parse(&value.to_string(), &rules()) {
            assert_checked(&requests, &rules())?;
        }
    }
}
