use super::*;
use serde_json::json;

fn record(id: &str, time: &str, source: &str, name: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "eventID": id,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0",
        "readOnly": false,
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:i-0abc123",
            "arn": "arn:aws:sts::111122223333:assumed-role/web-1-role/i-0abc123",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLE"
        }
    })
}

/// The seeded attack of the issue: a new access key, a trust-policy edit, StopLogging; with a
/// describe call between.
fn attack() -> Vec<Value> {
    let mut key = record(
        "e-key",
        "2026-03-01T10:00:00Z",
        "iam.amazonaws.com",
        "CreateAccessKey",
    );
    key["requestParameters"] = json!({"userName": "backdoor"});
    key["responseElements"] = json!({"accessKey": {"accessKeyId": "AKIANEWKEY", "userName": "backdoor", "status": "Active"}});
    let mut trust = record(
        "e-trust",
        "2026-03-01T10:05:00Z",
        "iam.amazonaws.com",
        "UpdateAssumeRolePolicy",
    );
    trust["requestParameters"] = json!({"roleName": "admin", "policyDocument": "{...}"});
    let mut stop = record(
        "e-stop",
        "2026-03-01T10:10:00Z",
        "cloudtrail.amazonaws.com",
        "StopLogging",
    );
    stop["requestParameters"] = json!({"name": "org-trail"});
    stop["resources"] = json!([{"ARN": "arn:aws:cloudtrail:eu-west-1:111122223333:trail/org-trail",
                                "accountId": "111122223333", "type": "AWS::CloudTrail::Trail"}]);
    let mut describe = record(
        "e-describe",
        "2026-03-01T10:01:00Z",
        "ec2.amazonaws.com",
        "DescribeInstances",
    );
    describe["readOnly"] = json!(true);
    vec![stop, key, describe, trust]
}

#[test]
fn rows_are_ordered_by_time_then_event_id() {
    let mut records = attack();
    // Same second as the key: ordered by id after it ("e-key" < "e-kez").
    records.push(record(
        "e-kez",
        "2026-03-01T10:00:00Z",
        "s3.amazonaws.com",
        "ListBuckets",
    ));
    // An earlier time written with an offset still sorts by the instant.
    records.push(record(
        "e-first",
        "2026-03-01T11:30:00+02:00",
        "sts.amazonaws.com",
        "GetCallerIdentity",
    ));
    let rows = build(records.into_iter().map(|r| (Source::Lookup, r)));
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "e-first",
            "e-key",
            "e-kez",
            "e-describe",
            "e-trust",
            "e-stop"
        ]
    );
}

#[test]
fn the_seeded_attack_is_flagged() {
    let rows = build(attack().into_iter().map(|r| (Source::TrailLog, r)));
    let flagged: Vec<(&str, Option<Flag>, Option<&str>)> = rows
        .iter()
        .map(|r| (r.event_name.as_str(), r.flag, r.why.as_deref()))
        .collect();
    assert_eq!(
        flagged,
        [
            (
                "CreateAccessKey",
                Some(Flag::Persistence),
                Some("new access key: persistence")
            ),
            ("DescribeInstances", None, None),
            (
                "UpdateAssumeRolePolicy",
                Some(Flag::Persistence),
                Some("role trust policy changed: persistence")
            ),
            (
                "StopLogging",
                Some(Flag::DefenceEvasion),
                Some("trail logging stopped: defence evasion")
            ),
        ]
    );
}

#[test]
fn a_row_holds_who_what_where() {
    let rows = build(attack().into_iter().map(|r| (Source::Lookup, r)));
    let key = &rows[0];
    assert_eq!(
        key.principal,
        "arn:aws:sts::111122223333:assumed-role/web-1-role/i-0abc123"
    );
    assert_eq!(key.account, "111122223333");
    assert_eq!(key.region, "eu-west-1");
    assert_eq!(key.access_key_id.as_deref(), Some("ASIAEXAMPLE"));
    assert_eq!(key.source_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(key.user_agent.as_deref(), Some("aws-cli/2.15.0"));
    assert_eq!(key.read_only, Some(false));
    assert_eq!(
        key.resources,
        ["userName=backdoor", "accessKeyId=AKIANEWKEY"]
    );
    assert_eq!(key.sources, [Source::Lookup]);
    let stop = &rows[3];
    assert_eq!(
        stop.resources,
        ["arn:aws:cloudtrail:eu-west-1:111122223333:trail/org-trail"]
    );
}

#[test]
fn the_principal_falls_back_to_principal_id_then_type() {
    let mut by_id = record("a", "2026-03-01T10:00:00Z", "s3.amazonaws.com", "GetObject");
    by_id["userIdentity"] = json!({"type": "AWSAccount", "principalId": "AIDAEXAMPLE"});
    let mut by_type = record(
        "b",
        "2026-03-01T10:00:00Z",
        "sts.amazonaws.com",
        "AssumeRole",
    );
    by_type["userIdentity"] = json!({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"});
    let rows = build([(Source::Lookup, by_id), (Source::Lookup, by_type)]);
    assert_eq!(rows[0].principal, "AIDAEXAMPLE");
    assert_eq!(rows[1].principal, "AWSService");
    assert_eq!(rows[1].access_key_id, None);
}

#[test]
fn a_failed_attempt_is_flagged_and_says_so() {
    let mut stop = record(
        "e",
        "2026-03-01T10:00:00Z",
        "cloudtrail.amazonaws.com",
        "StopLogging",
    );
    stop["errorCode"] = json!("AccessDenied");
    let rows = build([(Source::Lookup, stop)]);
    assert_eq!(rows[0].error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(
        rows[0].why.as_deref(),
        Some("trail logging stopped: defence evasion (failed: AccessDenied)")
    );
}

#[test]
fn an_event_read_from_both_sources_is_one_row_with_the_trail_logs_fields() {
    let lookup = record(
        "same",
        "2026-03-01T10:00:00Z",
        "iam.amazonaws.com",
        "CreateUser",
    );
    let mut log = lookup.clone();
    log["userAgent"] = json!("from-the-log-file");
    let other = record(
        "other",
        "2026-03-01T09:00:00Z",
        "iam.amazonaws.com",
        "ListUsers",
    );
    for order in [
        vec![
            (Source::Lookup, lookup.clone()),
            (Source::TrailLog, log.clone()),
        ],
        vec![
            (Source::TrailLog, log.clone()),
            (Source::Lookup, lookup.clone()),
        ],
    ] {
        let mut records = order;
        records.push((Source::Lookup, other.clone()));
        records.push((Source::Lookup, lookup.clone()));
        let rows = build(records);
        assert_eq!(rows.len(), 2);
        let same = &rows[1];
        assert_eq!(same.event_id, "same");
        assert_eq!(same.sources, [Source::Lookup, Source::TrailLog]);
        assert_eq!(same.user_agent.as_deref(), Some("from-the-log-file"));
        assert_eq!(rows[0].sources, [Source::Lookup]);
    }
}

#[test]
fn records_that_cannot_be_placed_are_left_out_and_say_why() {
    let mut no_id = record(
        "x",
        "2026-03-01T10:00:00Z",
        "iam.amazonaws.com",
        "CreateUser",
    );
    no_id.as_object_mut().expect("object").remove("eventID");
    let bad_time = record("y", "yesterday", "iam.amazonaws.com", "CreateUser");
    assert_eq!(
        Row::from_record(Source::Lookup, &no_id),
        Err(RecordError::NoEventId)
    );
    assert_eq!(
        Row::from_record(Source::Lookup, &bad_time).map_err(|e| e.to_string()),
        Err("the CloudTrail record y has no readable eventTime".into())
    );
    assert_eq!(
        Row::from_record(Source::Lookup, &json!([1])),
        Err(RecordError::NotAnObject)
    );
    assert!(build([(Source::Lookup, no_id), (Source::TrailLog, bad_time)]).is_empty());
}

#[test]
fn json_lines_are_one_object_a_row_with_snake_case_fields() {
    let rows = build(attack().into_iter().map(|r| (Source::Lookup, r)));
    let text = String::from_utf8(to_jsonl(&rows)).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(text.ends_with('\n'));
    let first: Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(first["time"], "2026-03-01T10:00:00Z");
    assert_eq!(first["event_name"], "CreateAccessKey");
    assert_eq!(first["flag"], "persistence");
    assert_eq!(first["sources"], json!(["lookup"]));
    assert_eq!(first["error_code"], Value::Null);
    let keys: Vec<&String> = first.as_object().expect("object").keys().collect();
    let mut expected: Vec<&str> = CSV_COLUMNS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "the JSON fields are the CSV columns");
    let stop: Value = serde_json::from_str(lines[3]).expect("json");
    assert_eq!(stop["flag"], "defence-evasion");
    // Rows read back.
    let back: Row = serde_json::from_str(lines[0]).expect("row");
    assert_eq!(back, rows[0]);
    assert_eq!(to_jsonl(&rows), to_jsonl(&rows));
}

#[test]
fn csv_is_rfc_4180_with_a_header_and_quoting() {
    let mut odd = record(
        "e-odd",
        "2026-03-01T10:00:00Z",
        "iam.amazonaws.com",
        "CreateUser",
    );
    odd["userAgent"] = json!("Mozilla/5.0 (X11; \"quoted\", comma)\nsecond line");
    odd["requestParameters"] = json!({"userName": "back,door", "groupName": "admins"});
    let mut formula = record(
        "e-formula",
        "2026-03-01T10:01:00Z",
        "s3.amazonaws.com",
        "GetObject",
    );
    formula["userAgent"] = json!("=HYPERLINK(\"http://evil\")");
    formula["readOnly"] = json!(true);
    let rows = build([(Source::TrailLog, odd), (Source::Lookup, formula)]);
    let text = String::from_utf8(to_csv(&rows)).expect("utf-8");
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(
            "time,event_id,account,region,principal,access_key_id,event_source,event_name,source_ip,user_agent,resources,error_code,read_only,flag,why,sources"
        )
    );
    assert_eq!(
        text,
        concat!(
            "time,event_id,account,region,principal,access_key_id,event_source,event_name,source_ip,user_agent,resources,error_code,read_only,flag,why,sources\r\n",
            "2026-03-01T10:00:00Z,e-odd,111122223333,eu-west-1,arn:aws:sts::111122223333:assumed-role/web-1-role/i-0abc123,ASIAEXAMPLE,iam.amazonaws.com,CreateUser,203.0.113.9,",
            "\"Mozilla/5.0 (X11; \"\"quoted\"\", comma)\nsecond line\",\"userName=back,door; groupName=admins\",,false,persistence,new IAM user: persistence,trail-log\r\n",
            "2026-03-01T10:01:00Z,e-formula,111122223333,eu-west-1,arn:aws:sts::111122223333:assumed-role/web-1-role/i-0abc123,ASIAEXAMPLE,s3.amazonaws.com,GetObject,203.0.113.9,",
            "\"'=HYPERLINK(\"\"http://evil\"\")\",,,true,,,lookup\r\n",
        )
    );
    assert_eq!(to_csv(&rows), to_csv(&rows));
    assert_eq!(
        String::from_utf8(to_csv(&[]))
            .expect("utf-8")
            .matches("\r\n")
            .count(),
        1,
        "an empty timeline is its header"
    );
}
