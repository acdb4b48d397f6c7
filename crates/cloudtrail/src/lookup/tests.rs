use super::*;
use serde_json::json;
use time::macros::datetime;

fn query() -> Query {
    Query {
        key: AttributeKey::ResourceName,
        value: "i-0abc123".into(),
        start: datetime!(2026-03-01 00:00:00 UTC),
        end: datetime!(2026-03-02 00:00:00 UTC),
    }
}

const START: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
const END: i64 = START + 86_400;

/// A response body: events (id, epoch seconds) newest first as given, and a token.
fn response(events: &[(&str, i64)], next: Option<&str>) -> Vec<u8> {
    let events: Vec<Value> = events
        .iter()
        .map(|(id, at)| {
            let record = json!({"eventID": id, "eventName": "RunInstances",
                "eventSource": "ec2.amazonaws.com", "eventTime": "ignored here"});
            json!({"EventId": id, "EventName": "RunInstances", "ReadOnly": "false",
                "EventTime": at, "EventSource": "ec2.amazonaws.com", "Username": "alice",
                "Resources": [{"ResourceType": "AWS::EC2::Instance", "ResourceName": "i-0abc123"}],
                "CloudTrailEvent": record.to_string()})
        })
        .collect();
    let mut body = json!({ "Events": events });
    if let Some(token) = next {
        body["NextToken"] = json!(token);
    }
    serde_json::to_vec(&body).expect("json")
}

fn page(
    number: u32,
    token: Option<&str>,
    events: &[(&str, i64)],
    next: Option<&str>,
) -> StoredPage {
    StoredPage {
        number,
        request: request_body(&query(), MAX_RESULTS, token),
        response: response(events, next),
    }
}

/// Three pages, newest first, the tokens chained, the last final.
fn complete() -> Vec<StoredPage> {
    vec![
        page(
            1,
            None,
            &[("e5", START + 500), ("e4", START + 400)],
            Some("t1"),
        ),
        page(
            2,
            Some("t1"),
            &[("e3", START + 300), ("e2", START + 300)],
            Some("t2"),
        ),
        page(3, Some("t2"), &[("e1", START + 100)], None),
    ]
}

#[test]
fn request_bodies_are_the_json_1_1_shape_byte_for_byte() {
    let first = request_body(&query(), 50, None);
    assert_eq!(
        String::from_utf8(first).expect("utf-8"),
        format!(
            r#"{{"LookupAttributes":[{{"AttributeKey":"ResourceName","AttributeValue":"i-0abc123"}}],"StartTime":{START},"EndTime":{END},"MaxResults":50}}"#
        )
    );
    let next = request_body(&query(), 50, Some("tok/+=="));
    assert!(
        String::from_utf8(next)
            .expect("utf-8")
            .ends_with(r#""MaxResults":50,"NextToken":"tok/+=="}"#)
    );
    assert_eq!(
        request_body(&query(), 50, Some("x")),
        request_body(&query(), 50, Some("x"))
    );
}

#[test]
fn attribute_keys_use_the_aws_spelling() {
    for key in AttributeKey::ALL {
        assert_eq!(AttributeKey::parse(key.as_str()), Some(key));
        assert_eq!(
            serde_json::to_value(key).expect("serialise"),
            json!(key.as_str())
        );
    }
    let key: AttributeKey = serde_json::from_value(json!("AccessKeyId")).expect("parse");
    assert_eq!(key, AttributeKey::AccessKeyId);
    assert_eq!(AttributeKey::parse("resourcename"), None);
    let round: Query =
        serde_json::from_value(serde_json::to_value(query()).expect("ser")).expect("de");
    assert_eq!(round, query());
}

#[test]
fn slugs_are_file_names_stable_and_unique() {
    let slug = |key, value: &str| {
        Query {
            key,
            value: value.into(),
            ..query()
        }
        .slug()
    };
    assert_eq!(query().slug(), "resourcename-i-0abc123");
    assert_eq!(slug(AttributeKey::Username, "i-0abc"), "username-i-0abc");
    let key = slug(AttributeKey::AccessKeyId, "ASIAEXAMPLE123456");
    assert!(key.starts_with("accesskeyid-asiaexample123456-"), "{key}");
    assert_eq!(key, slug(AttributeKey::AccessKeyId, "ASIAEXAMPLE123456"));
    // Values that differ only where the slug is lossy keep apart.
    assert_ne!(
        slug(AttributeKey::Username, "Alice"),
        slug(AttributeKey::Username, "alice")
    );
    assert_ne!(
        slug(AttributeKey::ResourceName, "a/b"),
        slug(AttributeKey::ResourceName, "a:b")
    );
    let arn = slug(
        AttributeKey::ResourceName,
        "arn:aws:iam::111122223333:role/a-very-long-role-name-used-for-the-web-tier-instances",
    );
    for s in [
        &key,
        &arn,
        &slug(AttributeKey::Username, ""),
        &slug(AttributeKey::Username, ".."),
    ] {
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
            "{s}"
        );
        assert!(s.len() <= 80, "{s}");
        assert!(!s.contains("..") && !s.ends_with('-'), "{s}");
    }
}

#[test]
fn a_page_reads_with_integer_or_float_times() {
    let mut body: Value = serde_json::from_slice(&response(
        &[("e2", START + 60), ("e1", START)],
        Some("next"),
    ))
    .expect("json");
    body["Events"][0]["EventTime"] = json!((START + 60) as f64 + 0.0);
    body["Events"][1]["AccessKeyId"] = json!("ASIAEXAMPLE");
    body["Events"][1]["ReadOnly"] = json!("true");
    let page = parse_page(&serde_json::to_vec(&body).expect("json")).expect("page");
    assert_eq!(page.next_token.as_deref(), Some("next"));
    assert_eq!(page.events.len(), 2);
    let [newer, older] = &page.events[..] else {
        panic!("two events")
    };
    assert_eq!(newer.event_time.unix_timestamp(), START + 60);
    assert_eq!(newer.read_only, Some(false));
    assert_eq!(older.read_only, Some(true));
    assert_eq!(older.access_key_id.as_deref(), Some("ASIAEXAMPLE"));
    assert_eq!(newer.access_key_id, None);
    assert_eq!(newer.username.as_deref(), Some("alice"));
    assert_eq!(
        newer.resources,
        vec![("AWS::EC2::Instance".to_string(), "i-0abc123".to_string())]
    );
    assert_eq!(newer.record["eventID"], "e2");
    let empty = parse_page(br#"{"Events":[]}"#).expect("empty page");
    assert!(empty.events.is_empty() && empty.next_token.is_none());
}

#[test]
fn a_page_that_does_not_read_names_the_event_and_field() {
    assert!(matches!(parse_page(b"<html>"), Err(PageError::NotJson(_))));
    assert!(matches!(
        parse_page(b"{}"),
        Err(PageError::Response {
            field: "Events",
            ..
        })
    ));
    let mut body: Value = serde_json::from_slice(&response(&[("e1", START)], None)).expect("json");
    body["Events"][0]["CloudTrailEvent"] = json!("{not json");
    let error = parse_page(&serde_json::to_vec(&body).expect("json")).expect_err("bad record");
    assert!(
        matches!(&error, PageError::Event { index: 0, event_id, field: "CloudTrailEvent", .. } if event_id == "e1"),
        "{error}"
    );
    assert!(
        error.to_string().contains("event 0 (e1): CloudTrailEvent"),
        "{error}"
    );
    body["Events"][0]
        .as_object_mut()
        .expect("object")
        .remove("EventTime");
    let error = parse_page(&serde_json::to_vec(&body).expect("json")).expect_err("no time");
    assert!(matches!(
        error,
        PageError::Event {
            field: "EventTime",
            ..
        }
    ));
    body["Events"][0]["EventTime"] = json!(START);
    body["Events"][0]["ReadOnly"] = json!("maybe");
    let error = parse_page(&serde_json::to_vec(&body).expect("json")).expect_err("read only");
    assert!(matches!(
        error,
        PageError::Event {
            field: "ReadOnly",
            ..
        }
    ));
}

#[test]
fn complete_pages_give_a_summary_in_any_order() {
    let mut pages = complete();
    pages.reverse();
    let summary = check_query(&query(), &pages).expect("complete");
    assert_eq!(
        summary,
        QuerySummary {
            pages: 3,
            events: 5,
            newest: Some(OffsetDateTime::from_unix_timestamp(START + 500).expect("t")),
            oldest: Some(OffsetDateTime::from_unix_timestamp(START + 100).expect("t")),
        }
    );
}

#[test]
fn a_query_with_no_events_is_one_final_page() {
    let summary = check_query(&query(), &[page(1, None, &[], None)]).expect("complete");
    assert_eq!(
        (summary.pages, summary.events, summary.newest),
        (1, 0, None)
    );
}

#[test]
fn requests_the_sdk_wrote_are_read_too() {
    // Another field order, fractional seconds, an explicit null token.
    let request = format!(
        r#"{{"EndTime":{}.0,"LookupAttributes":[{{"AttributeValue":"i-0abc123","AttributeKey":"ResourceName"}}],"MaxResults":50,"NextToken":null,"StartTime":{START}.25}}"#,
        END
    );
    let pages = [StoredPage {
        number: 1,
        request: request.into_bytes(),
        response: response(&[("e1", START + 1)], None),
    }];
    check_query(&query(), &pages).expect("the same query");
}

#[test]
fn no_pages_is_a_missing_first_page() {
    assert_eq!(
        check_query(&query(), &[]),
        Err(vec![PageProblem::Missing { page: 1, last: 1 }])
    );
}

#[test]
fn a_hole_in_the_pages_is_named() {
    let mut pages = complete();
    pages.remove(1);
    let problems = check_query(&query(), &pages).expect_err("hole");
    assert_eq!(problems, vec![PageProblem::Missing { page: 2, last: 2 }]);
    assert_eq!(
        problems[0].to_string(),
        "page 2: missing (the stored pages must be numbered 1..n without a hole)"
    );
    let mut pages = complete();
    pages[2].number = 9;
    let problems = check_query(&query(), &pages).expect_err("hole");
    assert_eq!(problems, vec![PageProblem::Missing { page: 3, last: 8 }]);
    assert!(problems[0].to_string().starts_with("pages 3..8: missing"));
}

#[test]
fn a_page_stored_twice_is_named() {
    let mut pages = complete();
    pages.push(pages[1].clone());
    assert_eq!(
        check_query(&query(), &pages),
        Err(vec![PageProblem::Duplicate { page: 2 }])
    );
}

#[test]
fn a_token_that_does_not_chain_is_named() {
    let mut pages = complete();
    pages[2] = page(3, Some("t-other"), &[("e1", START + 100)], None);
    let problems = check_query(&query(), &pages).expect_err("token");
    assert_eq!(
        problems,
        vec![PageProblem::TokenDoesNotChain {
            page: 3,
            expected: Some("t2".into()),
            found: Some("t-other".into()),
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        r#"page 3: the request's NextToken "t-other" is not page 2's response's "t2""#
    );
}

#[test]
fn a_first_request_with_a_token_or_a_later_one_without_is_named() {
    let mut pages = complete();
    pages[0] = page(
        1,
        Some("t0"),
        &[("e5", START + 500), ("e4", START + 400)],
        Some("t1"),
    );
    pages[1] = page(
        2,
        None,
        &[("e3", START + 300), ("e2", START + 300)],
        Some("t2"),
    );
    let problems = check_query(&query(), &pages).expect_err("tokens");
    assert_eq!(
        problems.iter().map(PageProblem::page).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(
        problems[0]
            .to_string()
            .contains("the first request carries a NextToken")
    );
    assert!(
        problems[1]
            .to_string()
            .contains("has no NextToken; page 1's response gave")
    );
}

#[test]
fn pages_after_the_final_one_are_named() {
    let mut pages = complete();
    pages[1] = page(2, Some("t1"), &[("e3", START + 300)], None);
    let problems = check_query(&query(), &pages).expect_err("after the end");
    assert!(matches!(
        &problems[..],
        [PageProblem::TokenDoesNotChain {
            page: 3,
            expected: None,
            found: Some(_)
        }]
    ));
    assert!(problems[0].to_string().contains("the query had ended"));
}

#[test]
fn an_incomplete_last_page_is_named() {
    let mut pages = complete();
    pages.pop();
    let problems = check_query(&query(), &pages).expect_err("incomplete");
    assert_eq!(problems, vec![PageProblem::Incomplete { page: 2 }]);
    assert!(problems[0].to_string().contains("incomplete"));
}

#[test]
fn events_out_of_order_across_pages_are_named() {
    let mut pages = complete();
    // Page 3's event is newer than page 2's last: the pages are not newest first.
    pages[2] = page(3, Some("t2"), &[("e1", START + 350)], None);
    let problems = check_query(&query(), &pages).expect_err("order");
    assert_eq!(
        problems,
        vec![PageProblem::OutOfOrder {
            page: 3,
            event_id: "e1".into(),
            time: OffsetDateTime::from_unix_timestamp(START + 350).expect("t"),
            previous: OffsetDateTime::from_unix_timestamp(START + 300).expect("t"),
        }]
    );
    assert!(problems[0].to_string().contains("2026-03-01T00:05:50Z"));
}

#[test]
fn events_outside_the_window_are_named() {
    let mut pages = complete();
    pages[0] = page(
        1,
        None,
        &[("late", END + 1), ("e4", START + 400)],
        Some("t1"),
    );
    pages[2] = page(
        3,
        Some("t2"),
        &[("e1", START + 100), ("early", START - 1)],
        None,
    );
    let problems = check_query(&query(), &pages).expect_err("window");
    let named: Vec<(u32, &str)> = problems
        .iter()
        .map(|p| match p {
            PageProblem::OutsideWindow { page, event_id, .. } => (*page, event_id.as_str()),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(named, [(1, "late"), (3, "early")]);
    // The window's edges themselves are inside.
    let edges = [page(1, None, &[("end", END), ("start", START)], None)];
    check_query(&query(), &edges).expect("edges inside");
}

#[test]
fn a_request_for_another_query_is_named() {
    let mut pages = complete();
    let other = Query {
        value: "i-0other".into(),
        ..query()
    };
    pages[1].request = request_body(&other, MAX_RESULTS, Some("t1"));
    let wider = Query {
        end: query().end + time::Duration::seconds(1),
        ..query()
    };
    pages[2].request = request_body(&wider, MAX_RESULTS, Some("t2"));
    let problems = check_query(&query(), &pages).expect_err("other query");
    assert!(matches!(&problems[..], [
        PageProblem::OtherQuery { page: 2, found, .. },
        PageProblem::OtherQuery { page: 3, .. },
    ] if found.contains("i-0other")));
}

#[test]
fn unreadable_stored_bodies_are_named() {
    let mut pages = complete();
    pages[0].request = b"not json".to_vec();
    pages[1].response = b"{\"Events\": 3}".to_vec();
    let problems = check_query(&query(), &pages).expect_err("bad bodies");
    assert!(matches!(
        &problems[..],
        [
            PageProblem::BadRequest { page: 1, .. },
            PageProblem::BadResponse { page: 2, .. }
        ]
    ));
    assert!(
        problems[1]
            .to_string()
            .starts_with("page 2: the stored response does not read")
    );
}
