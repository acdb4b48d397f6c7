//! Custody events and the SHA-256 chain that links them.
//!
//! Every step of a collection becomes one [`Event`], stored as one Object-Locked S3 object whose
//! bytes are [`Event::to_bytes`]. Each event carries `prev_sha256`, the SHA-256 of the previous
//! event's exact bytes (64 zeros for the first), so removing, reordering or editing any event
//! breaks every link after it. [`verify_chain`] walks a case's events and names the first break.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::CaseId;
use crate::action::Action;
use crate::details::{Details, DetailsError, Subject};

/// Version tag of the event format, stored in every event.
pub const EVENT_SCHEMA: &str = "forensnap.custody-event/1";
/// `prev_sha256` of the first event of a case.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Who acted: the AWS principal the calls were signed with, and the person behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Caller ARN (STS GetCallerIdentity of the forensic-account credentials).
    pub arn: String,
    /// The responder's name as given on the command line or in the config.
    pub operator: String,
}

/// Whether the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step did what it says.
    Ok,
    /// The step failed; `error` says why.
    Failed,
}

/// One custody event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Always [`EVENT_SCHEMA`].
    pub schema: String,
    /// The case the event belongs to.
    pub case: CaseId,
    /// Position in the case's chain, from 1.
    pub seq: u64,
    /// When the step finished, RFC 3339 UTC with milliseconds (`2026-11-23T20:35:48.360Z`).
    pub time: String,
    /// What was done, dotted (`snapshots.created`, `snapshot.shared`, ...).
    pub action: String,
    /// Whether it worked.
    pub outcome: Outcome,
    /// Who did it.
    pub actor: Actor,
    /// Why (the case's stated purpose or authority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The AWS account acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The region acted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Resource ids the step started from.
    #[serde(default)]
    pub before: Vec<String>,
    /// Resource ids the step produced or changed.
    #[serde(default)]
    pub after: Vec<String>,
    /// AWS request ids of the calls made.
    #[serde(default)]
    pub request_ids: Vec<String>,
    /// Step-specific facts (hashes, keys, object versions, states).
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Why the step failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// SHA-256 of the previous event's bytes ([`GENESIS`] for the first).
    pub prev_sha256: String,
}

/// What a step reports; the chain fills in case, sequence, time, actor and link.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// See [`Event::action`].
    pub action: String,
    /// `None` means [`Outcome::Ok`].
    pub error: Option<String>,
    /// See [`Event::account`].
    pub account: Option<String>,
    /// See [`Event::region`].
    pub region: Option<String>,
    /// See [`Event::before`].
    pub before: Vec<String>,
    /// See [`Event::after`].
    pub after: Vec<String>,
    /// See [`Event::request_ids`].
    pub request_ids: Vec<String>,
    /// See [`Event::details`]: written only from typed [`Details`] (and a [`Subject`]).
    details: serde_json::Map<String, serde_json::Value>,
}

impl EventDraft {
    /// A successful step that did what `details` says; the action is the details' own.
    pub fn new(details: impl Into<Details>) -> Self {
        let details = details.into();
        EventDraft {
            action: details.action().as_str().to_string(),
            error: None,
            account: None,
            region: None,
            before: Vec::new(),
            after: Vec::new(),
            request_ids: Vec::new(),
            details: details.to_map(),
        }
    }
    /// Name the instance the step is about (stored beside the step's details).
    pub fn about(mut self, subject: &Subject) -> Self {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(subject) {
            self.details.extend(fields);
        }
        self
    }
    /// Mark the step failed.
    pub fn failed(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
    /// Set account and region.
    pub fn at(mut self, account: &str, region: &str) -> Self {
        self.account = Some(account.to_string());
        self.region = Some(region.to_string());
        self
    }
    /// Add ids the step started from.
    pub fn before<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.before.extend(ids.into_iter().map(Into::into));
        self
    }
    /// Add ids the step produced.
    pub fn after<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.after.extend(ids.into_iter().map(Into::into));
        self
    }
    /// Add AWS request ids.
    pub fn request_ids<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.request_ids.extend(ids.into_iter().map(Into::into));
        self
    }
}

/// The last event of a chain: what the next event links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last event (0 when the chain is empty).
    pub seq: u64,
    /// SHA-256 of the last event's bytes ([`GENESIS`] when empty).
    pub sha256: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn empty() -> Self {
        ChainHead {
            seq: 0,
            sha256: GENESIS.to_string(),
        }
    }
}

/// A time as custody records write it: RFC 3339 in UTC with exactly three fraction digits
/// (fixed width, so times sort as text), e.g. `2026-11-23T20:35:48.360Z`.
pub fn utc_time(now: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    now.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

impl Event {
    /// The action this event records; `None` for a name this version does not know.
    pub fn kind(&self) -> Option<Action> {
        Action::parse(&self.action)
    }

    /// What the step did, typed; `Ok(None)` for an action this version does not know.
    pub fn details(&self) -> Result<Option<Details>, DetailsError> {
        match self.kind() {
            Some(action) => Details::parse(action, &self.details).map(Some),
            None => Ok(None),
        }
    }

    /// The instance a collection event is about; `None` for events of no instance (export,
    /// verify).
    pub fn subject(&self) -> Option<Subject> {
        let text = |key: &str| self.details.get(key)?.as_str().map(str::to_string);
        Some(Subject {
            instance: text("instance")?,
            member_account: text("member_account")?,
        })
    }

    /// The next event after `head`, finished at `now`.
    pub fn next(
        draft: EventDraft,
        case: &CaseId,
        head: &ChainHead,
        actor: &Actor,
        purpose: Option<&str>,
        now: OffsetDateTime,
    ) -> Event {
        let time = utc_time(now);
        Event {
            schema: EVENT_SCHEMA.to_string(),
            case: case.clone(),
            seq: head.seq + 1,
            time,
            outcome: if draft.error.is_some() {
                Outcome::Failed
            } else {
                Outcome::Ok
            },
            action: draft.action,
            actor: actor.clone(),
            purpose: purpose.map(str::to_string),
            account: draft.account,
            region: draft.region,
            before: draft.before,
            after: draft.after,
            request_ids: draft.request_ids,
            details: draft.details,
            error: draft.error,
            prev_sha256: head.sha256.clone(),
        }
    }

    /// The exact bytes stored (and hashed): compact JSON with fields in declaration order and
    /// detail keys sorted, then a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("an event always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The head this event makes.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            sha256: sha256_hex(&self.to_bytes()),
        }
    }
}

/// Evidence item id of an instance's DescribeInstances record.
pub fn instance_record_item(instance_id: &str) -> String {
    format!("{instance_id}-instance-record")
}

/// Evidence item id of an instance's console output.
pub fn console_output_item(instance_id: &str) -> String {
    format!("{instance_id}-console-output")
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The bytes are not an event.
    #[error("custody event {position} (key {key}) is not a readable event: {why}")]
    Unreadable {
        /// 1-based position in the listing.
        position: usize,
        /// Object key.
        key: String,
        /// Parser message.
        why: String,
    },
    /// A sequence number is missing or out of order.
    #[error(
        "custody chain of case {case}: expected event {expected} but found {found} (key {key}); an event was deleted, reordered or inserted"
    )]
    Sequence {
        /// Case.
        case: String,
        /// Expected sequence number.
        expected: u64,
        /// Found sequence number.
        found: u64,
        /// Object key.
        key: String,
    },
    /// An event does not link to the bytes of the one before.
    #[error(
        "custody chain of case {case}: event {seq} (key {key}) says the previous event hashed {claimed} but it hashes {actual}; event {prev} was edited or replaced"
    )]
    Link {
        /// Case.
        case: String,
        /// The event whose link is wrong.
        seq: u64,
        /// Previous sequence number.
        prev: u64,
        /// What the event claims.
        claimed: String,
        /// What the previous bytes hash to.
        actual: String,
        /// Object key.
        key: String,
    },
    /// An event of another case sits in this case's chain.
    #[error("custody chain of case {case}: event {seq} (key {key}) belongs to case {other}")]
    ForeignCase {
        /// Case.
        case: String,
        /// Sequence number.
        seq: u64,
        /// The event's case.
        other: String,
        /// Object key.
        key: String,
    },
}

/// Check a case's events, given as `(key, bytes)` in sequence order; returns the events and
/// the chain head.
pub fn verify_chain(
    case: &CaseId,
    stored: &[(String, Vec<u8>)],
) -> Result<(Vec<Event>, ChainHead), ChainError> {
    verify_chain_from(case, ChainHead::empty(), stored)
}

/// [`verify_chain`] of events that continue the chain after `head` (events another writer
/// appended since the chain was last read): the first must follow `head`.
pub fn verify_chain_from(
    case: &CaseId,
    head: ChainHead,
    stored: &[(String, Vec<u8>)],
) -> Result<(Vec<Event>, ChainHead), ChainError> {
    let mut head = head;
    let mut events = Vec::with_capacity(stored.len());
    let first = head.seq as usize;
    for (position, (key, bytes)) in stored.iter().enumerate() {
        let event: Event = serde_json::from_slice(bytes).map_err(|e| ChainError::Unreadable {
            position: first + position + 1,
            key: key.clone(),
            why: e.to_string(),
        })?;
        if &event.case != case {
            return Err(ChainError::ForeignCase {
                case: case.to_string(),
                seq: event.seq,
                other: event.case.to_string(),
                key: key.clone(),
            });
        }
        if event.seq != head.seq + 1 {
            return Err(ChainError::Sequence {
                case: case.to_string(),
                expected: head.seq + 1,
                found: event.seq,
                key: key.clone(),
            });
        }
        if event.prev_sha256 != head.sha256 {
            return Err(ChainError::Link {
                case: case.to_string(),
                seq: event.seq,
                prev: head.seq,
                claimed: event.prev_sha256.clone(),
                actual: head.sha256.clone(),
                key: key.clone(),
            });
        }
        head = ChainHead {
            seq: event.seq,
            sha256: sha256_hex(bytes),
        };
        events.push(event);
    }
    Ok((events, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::details::{RoleAssumed, Share, SnapshotDeleted, Stage};

    #[test]
    fn an_event_gives_back_its_typed_details_and_subject() {
        let case = CaseId::parse("IR-3").expect("case");
        let actor = Actor {
            arn: "a".into(),
            operator: "b".into(),
        };
        let deleted = SnapshotDeleted {
            volume_id: "vol-1".into(),
            stage: Stage::Intermediate,
            snapshot_id: "snap-1".into(),
            already_gone: true,
        };
        let subject = Subject {
            instance: "i-1".into(),
            member_account: "111122223333".into(),
        };
        let event = Event::next(
            EventDraft::new(deleted.clone()).about(&subject),
            &case,
            &ChainHead::empty(),
            &actor,
            None,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(event.action, "snapshot.deleted");
        let read: Event = serde_json::from_slice(&event.to_bytes()).expect("reads");
        assert_eq!(read.subject(), Some(subject));
        assert_eq!(
            read.details().expect("typed"),
            Some(Details::SnapshotDeleted(deleted))
        );
        let mut unknown = read.clone();
        unknown.action = "snapshot.teleported".into();
        assert_eq!(unknown.details().expect("no error"), None);
    }

    fn chain(n: u64) -> (CaseId, Vec<(String, Vec<u8>)>) {
        let case = CaseId::parse("IR-1").expect("case");
        let actor = Actor {
            arn: "arn:aws:iam::123456789012:user/op".into(),
            operator: "Jane".into(),
        };
        let mut head = ChainHead::empty();
        let mut out = Vec::new();
        for i in 0..n {
            let draft = EventDraft::new(Details::SnapshotShared(Share {
                volume_id: format!("vol-{i}"),
                snapshot_id: format!("snap-{i}"),
                with: "999988887777".into(),
                already_gone: false,
            }))
            .after([format!("snap-{i}")]);
            let event = Event::next(
                draft,
                &case,
                &head,
                &actor,
                Some("test"),
                OffsetDateTime::UNIX_EPOCH,
            );
            head = event.head();
            out.push((
                crate::CaseLayout::new("", &case).event(event.seq),
                event.to_bytes(),
            ));
        }
        (case, out)
    }

    #[test]
    fn an_intact_chain_verifies_and_round_trips() {
        let (case, stored) = chain(4);
        let (events, head) = verify_chain(&case, &stored).expect("intact");
        assert_eq!(head.seq, 4);
        assert_eq!(events[0].prev_sha256, GENESIS);
        assert_eq!(events[0].time, "1970-01-01T00:00:00.000Z");
        for (event, (_, bytes)) in events.iter().zip(&stored) {
            assert_eq!(&event.to_bytes(), bytes, "canonical bytes are stable");
        }
        assert_eq!(stored[2].0, "cases/IR-1/custody/events/00000003.json");
    }

    #[test]
    fn deleting_reordering_and_editing_are_named() {
        let (case, stored) = chain(4);
        let mut deleted = stored.clone();
        deleted.remove(1);
        assert!(matches!(
            verify_chain(&case, &deleted),
            Err(ChainError::Sequence {
                expected: 2,
                found: 3,
                ..
            })
        ));

        let mut swapped = stored.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify_chain(&case, &swapped),
            Err(ChainError::Sequence { expected: 2, .. })
        ));

        let mut edited = stored.clone();
        let text = String::from_utf8(edited[1].1.clone())
            .expect("utf8")
            .replace("snap-1", "snap-X");
        edited[1].1 = text.into_bytes();
        let err = verify_chain(&case, &edited).expect_err("edited");
        assert!(
            matches!(
                err,
                ChainError::Link {
                    seq: 3,
                    prev: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("event 2 was edited"));

        let mut garbage = stored;
        garbage[0].1 = b"{".to_vec();
        assert!(matches!(
            verify_chain(&case, &garbage),
            Err(ChainError::Unreadable { position: 1, .. })
        ));
    }

    #[test]
    fn failed_steps_carry_their_error() {
        let case = CaseId::parse("IR-2").expect("case");
        let actor = Actor {
            arn: "a".into(),
            operator: "b".into(),
        };
        let event = Event::next(
            EventDraft::new(RoleAssumed::default()).failed("AccessDenied"),
            &case,
            &ChainHead::empty(),
            &actor,
            None,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(event.outcome, Outcome::Failed);
        let text = String::from_utf8(event.to_bytes()).expect("utf8");
        assert!(text.contains("\"outcome\":\"failed\"") && text.contains("AccessDenied"));
        assert!(text.ends_with("}\n"));
    }
}
