"""CloudTrail's event history: every management call the world serves, plus seeded activity,
searchable with ``LookupEvents`` as AWS serves it.

What this module owns:

* **The event store** (:data:`STORE`): per (account, region) the management events, each a full
  CloudTrail record (``eventVersion`` 1.11: ``userIdentity``, ``eventTime``, ``eventSource``,
  ``eventName``, ``awsRegion``, ``sourceIPAddress``, ``userAgent``, ``requestParameters``,
  ``responseElements``, ``errorCode``/``errorMessage``, ``requestID``, ``eventID``,
  ``readOnly``, ``eventType``, ``managementEvent``, ``recipientAccountId``, ``eventCategory``)
  and its LookupEvents view (``Username``, ``AccessKeyId``, ``Resources``).
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
* **Recording served calls** (:func:`observe`, called by ``server.World.serve`` once the answer is
  known, refusals by policy included): the event is in the caller's account and the call's
  region, at the world clock's time of the request. Left out, as CloudTrail leaves them out of
  management events: data events (S3 object-level calls and object listings, the EBS direct
  APIs, DynamoDB item calls, SQS message calls, EventBridge PutEvents), requests that failed
  authentication (expired or token-less credentials: no identity, no event), and the world's
  own setup -- requests signed with the seed's key :data:`BUILDER_KEY` (``seed.py`` and the
  template deployment act as the account root to *build* the world; they are not part of its
  history). The control API and ``/moto-api/`` never reach here.
* **Seeded events** (:func:`seed_events`, ``POST /_forensnap/cloudtrail/seed``): activity from
  the world file (``[[members.trail_events]]``, background activity), placed in the past
  relative to the world clock.
* **The CloudTrail API calls the world answers itself** (:func:`answer`): ``LookupEvents`` (one
  lookup attribute, ``StartTime``/``EndTime`` inclusive, ``MaxResults`` 1..50, an opaque
  ``NextToken`` into a snapshot taken by the first page, newest first with ties broken by event
  id, 90 days back, 2 requests per second per account and region),
  https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html;
  ``ListPublicKeys`` and ``GetTrailStatus`` (from :mod:`.trails`); ``DescribeTrails`` is moto's,
  filtered by ``trailNameList`` (:func:`after_moto`). moto 5.2.5 implements neither
  LookupEvents nor ListPublicKeys.
"""

from __future__ import annotations

import base64
import collections
import datetime
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import clock
from .wire import AwsError, Call

log = logging.getLogger("forensnap_world")

EVENT_VERSION = "1.11"
RETENTION = datetime.timedelta(days=90)
"""LookupEvents searches the last 90 days of management events."""
MAX_RESULTS = 50
LOOKUP_RATE = 2.0
"""LookupEvents: 2 requests per second per account and region (token bucket, burst 2).
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/WhatIsCloudTrail-Limits.html"""
LOOKUP_KEYS = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName",
               "EventSource", "AccessKeyId")
BUILDER_KEY = "seed"
"""The access key of the seed's clients (``seed._clients``): the world's builder, not an actor."""
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
_SECRET_PARAMETERS = {"password", "newpassword", "oldpassword", "secretaccesskey", "sessiontoken",
                      "plaintext", "message"}
_TOKENS_KEPT = 1000

# --- which calls are management events ----------------------------------------------------------

_S3_DATA = {"ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads",
            "DeleteObjects"}
_DYNAMODB_DATA = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                  "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems",
                  "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
_SQS_DATA = {"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
             "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
_READ_ONLY = ("Describe", "Get", "List", "Lookup", "Head")


def is_management(call: Call) -> bool:
    """Whether CloudTrail records this call as a management event (the others are data events,
    which it records only for trails that ask for them, and never in the event history)."""
    service, op = call.service, call.operation
    if not service or service == "ebs":
        return False
    if service == "s3":
        from .wire import s3_bucket_key

        _, key = s3_bucket_key(call)
        return not key and op not in _S3_DATA
    if service == "dynamodb":
        return op not in _DYNAMODB_DATA
    if service == "sqs":
        return op not in _SQS_DATA
    if service == "events":
        return op != "PutEvents"
    return True


def read_only(event_name: str) -> bool:
    return event_name.startswith(_READ_ONLY)


def event_source(service: str) -> str:
    return f"{service}.amazonaws.com"


# --- the store ------------------------------------------------------------------------------------


@dataclass
class Event:
    """One management event: the CloudTrail record and what LookupEvents shows of it."""

    account: str
    region: str
    time: datetime.datetime
    """Naive UTC, whole seconds (the record's ``eventTime``)."""
    record: dict
    username: str | None
    resources: list[dict] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return self.record["eventID"]

    def lookup_view(self) -> dict:
        """The event as LookupEvents answers it."""
        view = {
            "EventId": self.event_id,
            "EventName": self.record["eventName"],
            "ReadOnly": "true" if self.record["readOnly"] else "false",
            "EventTime": epoch(self.time),
            "EventSource": self.record["eventSource"],
            "Resources": list(self.resources),
            "CloudTrailEvent": json.dumps(self.record, separators=(",", ":")),
        }
        key = self.record["userIdentity"].get("accessKeyId")
        if key:
            view["AccessKeyId"] = key
        if self.username:
            view["Username"] = self.username
        return view

    def attribute(self, key: str) -> list[str]:
        """The values a LookupEvents attribute ``key`` matches against."""
        if key == "EventId":
            return [self.event_id]
        if key == "EventName":
            return [self.record["eventName"]]
        if key == "ReadOnly":
            return ["true" if self.record["readOnly"] else "false"]
        if key == "Username":
            return [self.username] if self.username else []
        if key == "EventSource":
            return [self.record["eventSource"]]
        if key == "AccessKeyId":
            value = self.record["userIdentity"].get("accessKeyId")
            return [value] if value else []
        if key == "ResourceType":
            return [r["ResourceType"] for r in self.resources]
        if key == "ResourceName":
            return [r["ResourceName"] for r in self.resources]
        return []


class Store:
    """Events per (account, region); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], list[Event]] = collections.defaultdict(list)

    def add(self, event: Event) -> None:
        with self._lock:
            self._events[(event.account, event.region)].append(event)

    def events(self, account: str, region: str) -> list[Event]:
        with self._lock:
            return list(self._events.get((account, region), []))

    def regions(self, account: str) -> list[str]:
        with self._lock:
            return sorted(r for (a, r), events in self._events.items() if a == account and events)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


STORE = Store()


def newest_first(events: list[Event]) -> list[Event]:
    """LookupEvents' order: newest first, events of the same second by event id."""
    ordered = sorted(events, key=lambda e: e.event_id)
    return sorted(ordered, key=lambda e: e.time, reverse=True)


# --- time ------------------------------------------------------------------------------------------


def epoch(when: datetime.datetime) -> int:
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def from_epoch(value: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc).replace(tzinfo=None)


def now() -> datetime.datetime:
    """The world clock, whole seconds (CloudTrail's event times have no fraction)."""
    return clock.now().replace(microsecond=0)


def parse_time(value, name: str) -> datetime.datetime:
    """A JSON 1.1 timestamp (epoch seconds; an ISO 8601 string accepted too)."""
    if isinstance(value, bool):
        raise AwsError(400, "ValidationException", f"{name} must be a timestamp")
    if isinstance(value, (int, float)):
        return from_epoch(value)
    if isinstance(value, str):
        try:
            return from_epoch(float(value))
        except ValueError:
            pass
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise AwsError(400, "ValidationException", f"{name} {value!r} is not a timestamp") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return parsed
    raise AwsError(400, "ValidationException", f"{name} must be a timestamp")


# --- who called ------------------------------------------------------------------------------------

_ASSUMED = re.compile(r"^arn:aws[\w-]*:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_USER = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):user/(?:.*/)?([^/]+)$")
_ROOT = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):root$")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")

_sessions_lock = threading.Lock()
_sessions: dict[str, dict] = {}
"""access key id -> {"created": datetime, "source_identity": str | None} of STS sessions and
instance-profile keys, as CloudTrail's ``sessionContext.attributes`` names them."""


def _unique_id(prefix: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return prefix + "".join(alphabet[b % 32] for b in digest[:17])


def user_identity(principal_arn: str, access_key: str | None, when: datetime.datetime) -> tuple[dict, str | None]:
    """(``userIdentity``, LookupEvents ``Username``) of a caller named by its ARN."""
    from .identity import role_unique_id

    match = _ASSUMED.match(principal_arn)
    if match:
        account, role, session = match.groups()
        with _sessions_lock:
            known = dict(_sessions.get(access_key or "", {}))
            if access_key and access_key not in _sessions:
                _sessions[access_key] = {"created": when, "source_identity": None}
        context = {
            "sessionIssuer": {"type": "Role", "principalId": role_unique_id(account, role),
                              "arn": _role_arn(account, role), "accountId": account, "userName": role},
            "attributes": {"creationDate": iso(known.get("created") or when), "mfaAuthenticated": "false"},
        }
        if known.get("source_identity"):
            context["sourceIdentity"] = known["source_identity"]
        if _INSTANCE_ID.match(session):
            context["ec2RoleDelivery"] = "2.0"
        identity = {"type": "AssumedRole", "principalId": f"{context['sessionIssuer']['principalId']}:{session}",
                    "arn": principal_arn, "accountId": account}
        if access_key:
            identity["accessKeyId"] = access_key
        identity["sessionContext"] = context
        return identity, session
    match = _USER.match(principal_arn)
    if match:
        account, name = match.groups()
        identity = {"type": "IAMUser", "principalId": _user_id(account, name) or _unique_id("AIDA", principal_arn),
                    "arn": principal_arn, "accountId": account}
        if access_key:
            identity["accessKeyId"] = access_key
        identity["userName"] = name
        return identity, name
    match = _ROOT.match(principal_arn)
    if match:
        account = match.group(1)
        identity = {"type": "Root", "principalId": account, "arn": principal_arn, "accountId": account}
        if access_key:
            identity["accessKeyId"] = access_key
        return identity, "root"
    raise ValueError(f"{principal_arn!r} names no caller (an assumed-role session, an IAM user or an "
                     "account root)")


def _role_arn(account: str, name: str) -> str:
    """A role's ARN (with its path when the world holds the role)."""
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["aws"].get_role(name).arn
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        return f"arn:aws:iam::{account}:role/{name}"


def _user_id(account: str, name: str) -> str | None:
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["aws"].get_user(name).id
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        return None


def _remember_session(call: Call, body: bytes) -> None:
    """An AssumeRole that issued credentials: when, and with which SourceIdentity."""
    match = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
    if match:
        with _sessions_lock:
            _sessions[match.group(1).decode()] = {"created": now(),
                                                  "source_identity": call.param("SourceIdentity")}


# --- request parameters and resources -------------------------------------------------------------


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


def _hide(name: str, value):
    return HIDDEN if name.lower() in _SECRET_PARAMETERS else value


def _unflatten(flat: dict[str, str]) -> dict:
    """Query-protocol parameters (``TagSpecification.1.Tag.2.Key``) as CloudTrail's nested,
    lowerCamelCase ``requestParameters``; ``member`` list markers are dropped."""
    root: dict = {}
    for name, value in flat.items():
        parts = [p for p in name.split(".") if p != "member"]
        node = root
        for i, part in enumerate(parts):
            key = part if part.isdigit() else _lower_camel(part)
            if i == len(parts) - 1:
                node[key] = _hide(part, value)
                continue
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _camel_json(node):
    if isinstance(node, dict):
        return {_lower_camel(k): _hide(k, _camel_json(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_camel_json(v) for v in node]
    return node


def _json_body(call: Call) -> dict:
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def request_parameters(call: Call) -> dict | None:
    """The call's parameters as CloudTrail records them (``null`` when it has none)."""
    if call.service == "s3":
        from .wire import s3_bucket_key

        bucket, _ = s3_bucket_key(call)
        params = {"bucketName": bucket} if bucket else {}
        params["Host"] = call.header("host", "")
        params.update({k: v[0] if len(v) == 1 else v for k, v in call.query.items()})
        return params
    if call.params:
        flat = {k: v[0] for k, v in call.params.items() if k not in ("Action", "Version")}
        return _unflatten(flat) or None
    if call.header("x-amz-target"):
        params = _camel_json(_json_body(call)) or None
        if params and call.service == "ssm" and "parameters" in params:
            # SendCommand's document parameters (forensnap's presigned URLs among them) are not
            # in the record: CloudTrail shows them as hidden.
            params["parameters"] = HIDDEN
        return params
    if call.query:
        return _unflatten({k: v[0] for k, v in call.query.items() if k not in ("Action", "Version")}) or None
    return None


_ID_TYPES = (
    (re.compile(r"^i-[0-9a-f]{8,17}$"), "AWS::EC2::Instance"),
    (re.compile(r"^vol-[0-9a-f]{8,17}$"), "AWS::EC2::Volume"),
    (re.compile(r"^snap-[0-9a-f]{8,17}$"), "AWS::EC2::Snapshot"),
    (re.compile(r"^eni-[0-9a-f]{8,17}$"), "AWS::EC2::NetworkInterface"),
)
_NAMED_TYPES = {
    "rolename": "AWS::IAM::Role",
    "rolearn": "AWS::IAM::Role",
    "username": "AWS::IAM::User",
    "policyarn": "AWS::IAM::Policy",
    "instanceprofilename": "AWS::IAM::InstanceProfile",
}
_CREATES = {"RunInstances", "CreateSnapshot", "CreateSnapshots", "CopySnapshot", "CreateVolume",
            "CreateNetworkInterface"}


def _walk(node, name: str = ""):
    """(parameter name, string value) of every leaf of a parameter tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, name)
    elif isinstance(node, str):
        yield name, node


def derive_resources(service: str, parameters, response: bytes = b"") -> list[dict]:
    """LookupEvents' ``Resources`` of a call: the EC2 ids it names (and, for the calls that make
    them, the ids its answer names), IAM roles, users, policies and access keys, the trail, the
    KMS key, the bucket."""
    found: list[tuple[str, str]] = []
    for name, value in _walk(parameters or {}):
        key = re.sub(r"[^a-z]", "", name.lower())
        for pattern, kind in _ID_TYPES:
            if pattern.match(value):
                found.append((kind, value))
        if service == "iam" and key in _NAMED_TYPES:
            found.append((_NAMED_TYPES[key], value))
        elif service == "iam" and key == "accesskeyid":
            found.append(("AWS::IAM::AccessKey", value))
        elif service == "sts" and key == "rolearn":
            found.append(("AWS::IAM::Role", value))
        elif service == "sts" and key == "accesskeyid":
            found.append(("AWS::IAM::AccessKey", value))  # the key AssumeRole issued
        elif service == "sts" and key == "arn" and ":assumed-role/" in value:
            found.append(("AWS::STS::AssumedRole", value))
        elif service == "cloudtrail" and key in ("name", "trailname"):
            found.append(("AWS::CloudTrail::Trail", value))
        elif service == "kms" and key in ("keyid", "targetkeyid"):
            found.append(("AWS::KMS::Key", value))
        elif service == "s3" and key == "bucketname":
            found.append(("AWS::S3::Bucket", value))
        elif service == "ssm" and key == "documentname":
            found.append(("AWS::SSM::Document", value))
    for value in re.findall(rb"\b(?:i|vol|snap|eni)-[0-9a-f]{8,17}\b", response or b""):
        text = value.decode()
        for pattern, kind in _ID_TYPES:
            if pattern.match(text):
                found.append((kind, text))
    seen, out = set(), []
    for kind, value in found:
        if (kind, value) not in seen:
            seen.add((kind, value))
            out.append({"ResourceType": kind, "ResourceName": value})
    return out


# --- recording ---------------------------------------------------------------------------------------


def _error_of(call: Call, status: int, body: bytes) -> tuple[str, str] | None:
    """(errorCode, errorMessage) of a failed call, read from the service's error body."""
    if status < 400:
        return None
    code, message = None, ""
    text = body[:20000] if body else b""
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            code = (parsed.get("__type") or parsed.get("code") or "").split("#")[-1] or None
            message = parsed.get("message") or parsed.get("Message") or ""
    except ValueError:
        match = re.search(rb"<Code>([^<]+)</Code>", text)
        code = match.group(1).decode() if match else None
        match = re.search(rb"<Message>([^<]*)</Message>", text)
        message = match.group(1).decode() if match else ""
    if code is None:  # a HEAD answer has no body
        code = {403: "AccessDenied", 404: "NotFound"}.get(status, f"HTTP{status}")
    return code, message


def _ec2_code(call: Call, status: int, code: str) -> str:
    """EC2 errors are recorded as ``Client.<Code>`` / ``Server.<Code>``."""
    if call.service != "ec2" or "." in code:
        return code
    return f"{'Server' if status >= 500 else 'Client'}.{code}"


def _response_elements(call: Call, status: int, body: bytes) -> dict | None:
    """What CloudTrail records of an answer, for the calls a timeline needs to link: the session
    an AssumeRole issued (its access key id, never a secret), the user CreateUser made and the
    key CreateAccessKey made."""
    if status >= 300 or (call.service, call.operation) not in (
            ("sts", "AssumeRole"), ("iam", "CreateAccessKey"), ("iam", "CreateUser")):
        return None

    def tag(name: str) -> str | None:
        match = re.search(rf"<{name}>([^<]*)</{name}>".encode(), body)
        return match.group(1).decode() if match else None

    if call.operation == "CreateAccessKey":
        return {"accessKey": {"userName": tag("UserName"), "accessKeyId": tag("AccessKeyId"),
                              "status": tag("Status"), "createDate": tag("CreateDate")}}
    if call.operation == "CreateUser":
        return {"user": {"path": tag("Path"), "userName": tag("UserName"), "userId": tag("UserId"),
                         "arn": tag("Arn"), "createDate": tag("CreateDate")}}
    elements = {"credentials": {"accessKeyId": tag("AccessKeyId"), "sessionToken": HIDDEN,
                                "expiration": tag("Expiration")},
                "assumedRoleUser": {"assumedRoleId": tag("AssumedRoleId"), "arn": tag("Arn")}}
    if call.param("SourceIdentity"):
        elements["sourceIdentity"] = call.param("SourceIdentity")
    return elements


def observe(call: Call, started: datetime.datetime, status: int, body: bytes = b"",
            error: tuple[str, str] | None = None) -> Event | None:
    """Record a call the world has answered (``error``: the code and message of a refusal the
    world raised itself); returns the event, or None for a call that is not one. Never fails
    the call: a recorder error is logged and the call answered as it was."""
    from . import trails

    try:
        if status < 300:
            if call.service == "sts" and call.operation == "AssumeRole":
                _remember_session(call, body)
            trails.observe(call, started)
        if not is_management(call) or not call.access_key or call.access_key == BUILDER_KEY:
            return None
        return _record(call, started, status, body, error)
    except Exception:  # noqa: BLE001 - the history is the world's own; the call stands
        log.exception("CloudTrail: could not record %s %s", call.service, call.operation)
        return None


def _record(call: Call, started: datetime.datetime, status: int, body: bytes,
            error: tuple[str, str] | None) -> Event:
    from .identity import caller_arn

    principal = caller_arn(call)
    identity, username = user_identity(principal, call.access_key, started)
    failure = error or _error_of(call, status, body)
    parameters = request_parameters(call)
    record = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": iso(started),
        "eventSource": event_source(call.service),
        "eventName": call.operation,
        "awsRegion": call.region,
        "sourceIPAddress": call.environ.get("REMOTE_ADDR") or "127.0.0.1",
        "userAgent": call.header("user-agent", ""),
    }
    if failure:
        record["errorCode"] = _ec2_code(call, status, failure[0])
        record["errorMessage"] = failure[1]
    record.update({
        "requestParameters": parameters,
        "responseElements": None if failure else _response_elements(call, status, body),
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only(call.operation),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": call.account,
        "eventCategory": "Management",
    })
    tls = _tls_details(call)
    if tls:
        record["tlsDetails"] = tls
    elements = record["responseElements"]
    resources = derive_resources(call.service, [parameters, elements] if elements else parameters,
                                 body if call.service == "ec2" and call.operation in _CREATES and not failure else b"")
    event = Event(call.account, call.region, started, record, username, resources)
    STORE.add(event)
    return event


def _tls_details(call: Call) -> dict | None:
    try:
        version = call.tls_version
    except AwsError:
        return None
    if version is None:
        return None
    suite = "TLS_AES_128_GCM_SHA256" if version == "1.3" else "ECDHE-RSA-AES128-GCM-SHA256"
    return {"tlsVersion": f"TLSv{version}", "cipherSuite": suite,
            "clientProvidedHostHeader": call.header("host", "")}


# --- seeded events -----------------------------------------------------------------------------------


def seeded_event(account: str, region: str, spec: dict, at: datetime.datetime) -> Event:
    """An event from the world file: ``spec`` names ``principal`` (an ARN), ``event_source``,
    ``event_name`` and optionally ``access_key_id``, ``source_ip``, ``user_agent``,
    ``request_parameters``, ``response_elements``, ``resources`` [{type, name}],
    ``error_code``, ``error_message``, ``read_only``, ``region``."""
    for key in ("principal", "event_source", "event_name"):
        if not spec.get(key):
            raise ValueError(f"a seeded event needs {key!r}: {spec!r}")
    region = spec.get("region") or region
    access_key = spec.get("access_key_id")
    identity, username = user_identity(spec["principal"], access_key, at)
    name = spec["event_name"]
    parameters = spec.get("request_parameters")
    record = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": iso(at),
        "eventSource": spec["event_source"],
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": spec.get("source_ip") or "198.51.100.1",
        "userAgent": spec.get("user_agent") or "aws-cli/2.15.0 Python/3.11.6",
    }
    if spec.get("error_code"):
        record["errorCode"] = spec["error_code"]
        record["errorMessage"] = spec.get("error_message") or _default_message(spec, name)
    record.update({
        "requestParameters": parameters,
        "responseElements": None if spec.get("error_code") else spec.get("response_elements"),
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": bool(spec["read_only"]) if "read_only" in spec else read_only(name),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    })
    if "resources" in spec:
        resources = [{"ResourceType": r["type"], "ResourceName": r["name"]} for r in spec["resources"]]
    else:
        service = spec["event_source"].split(".")[0]
        resources = derive_resources(service, parameters)
    return Event(account, region, at, record, username, resources)


def _default_message(spec: dict, name: str) -> str:
    service = spec["event_source"].split(".")[0]
    return f"User: {spec['principal']} is not authorized to perform: {service}:{name}"


def seed_events(account: str, region: str, specs: list[dict]) -> list[Event]:
    """Add events from the world file; each spec's ``minutes_ago`` (or ``seconds_ago``) places it
    before the world clock's now. Sessions get their creation date from their first event."""
    current = now()
    events = []
    for spec in specs:
        ago = float(spec.get("seconds_ago", float(spec.get("minutes_ago", 0)) * 60))
        if ago < 0:
            raise ValueError(f"a seeded event is in the past: minutes_ago {ago / 60} < 0")
        at = (current - datetime.timedelta(seconds=ago)).replace(microsecond=0)
        events.append((at, spec))
    for at, spec in sorted(events, key=lambda pair: pair[0]):
        key = spec.get("access_key_id")
        if key:
            with _sessions_lock:
                _sessions.setdefault(key, {"created": at, "source_identity": spec.get("source_identity")})
    made = []
    for at, spec in events:
        event = seeded_event(account, region, spec, at)
        STORE.add(event)
        made.append(event)
    return made


# --- the API the world answers itself ----------------------------------------------------------------


def handles(call: Call) -> bool:
    return call.service == "cloudtrail" and call.operation in ("LookupEvents", "ListPublicKeys",
                                                                "GetTrailStatus")


def answer(call: Call) -> tuple[int, list, bytes]:
    from . import trails

    body = _json_body(call)
    if call.operation == "LookupEvents":
        result = lookup_events(call.account, call.region, body)
    elif call.operation == "ListPublicKeys":
        result = trails.list_public_keys(call.region, body)
    else:
        result = trails.trail_status(call.account, call.region, body.get("Name") or "")
    return _json(result)


def _json(result: dict) -> tuple[int, list, bytes]:
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return 200, headers, json.dumps(result).encode()


def after_moto(call: Call, status: int, headers: list, body: bytes) -> tuple[int, list, bytes]:
    """DescribeTrails with ``trailNameList``: only the trails named (moto answers every trail)."""
    if call.service != "cloudtrail" or call.operation != "DescribeTrails" or status != 200:
        return status, headers, body
    names = _json_body(call).get("trailNameList") or []
    if not names:
        return status, headers, body
    answer_ = json.loads(body)
    answer_["trailList"] = [t for t in answer_.get("trailList", [])
                            if t.get("Name") in names or t.get("TrailARN") in names]
    return status, headers, json.dumps(answer_).encode()


# --- LookupEvents --------------------------------------------------------------------------------------


class _Bucket:
    """A token bucket on real (monotonic) time."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        current = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (current - self.at) * self.rate)
        self.at = current
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


_throttle_lock = threading.Lock()
_buckets: dict[tuple[str, str], _Bucket] = {}


def _throttle(account: str, region: str) -> None:
    with _throttle_lock:
        bucket = _buckets.setdefault((account, region), _Bucket(LOOKUP_RATE, LOOKUP_RATE))
        allowed = bucket.take()
    if not allowed:
        raise AwsError(400, "ThrottlingException", "Rate exceeded")


@dataclass
class _Page:
    account: str
    region: str
    query: str
    events: list[Event]
    offset: int


_pages_lock = threading.Lock()
_pages: collections.OrderedDict[str, _Page] = collections.OrderedDict()


def lookup_events(account: str, region: str, body: dict) -> dict:
    """``LookupEvents`` in ``account`` and ``region``, as CloudTrail answers it."""
    _throttle(account, region)
    attributes = body.get("LookupAttributes") or []
    if not isinstance(attributes, list) or len(attributes) > 1:
        raise AwsError(400, "InvalidLookupAttributesException",
                       "You cannot specify more than one lookup attribute.")
    attribute = None
    if attributes:
        key, value = attributes[0].get("AttributeKey"), attributes[0].get("AttributeValue")
        if key not in LOOKUP_KEYS:
            raise AwsError(400, "InvalidLookupAttributesException",
                           f"AttributeKey {key!r} is not one of {', '.join(LOOKUP_KEYS)}.")
        if not isinstance(value, str) or not 1 <= len(value) <= 2000:
            raise AwsError(400, "InvalidLookupAttributesException",
                           "AttributeValue must be 1 to 2000 characters.")
        attribute = (key, value)
    maximum = body.get("MaxResults", MAX_RESULTS)
    if isinstance(maximum, bool) or not isinstance(maximum, int) or not 1 <= maximum <= MAX_RESULTS:
        raise AwsError(400, "InvalidMaxResultsException",
                       f"MaxResults must be between 1 and {MAX_RESULTS}, not {maximum!r}.")
    category = body.get("EventCategory")
    if category not in (None, "insight"):
        raise AwsError(400, "InvalidEventCategoryException", f"EventCategory {category!r} is not insight.")
    current = now()
    start = parse_time(body["StartTime"], "StartTime") if body.get("StartTime") is not None else None
    end = parse_time(body["EndTime"], "EndTime") if body.get("EndTime") is not None else None
    if start is not None and end is not None and start > end:
        raise AwsError(400, "InvalidTimeRangeException", "StartTime must be before EndTime.")
    query = json.dumps([attribute, body.get("StartTime"), body.get("EndTime"), category])
    token = body.get("NextToken")
    if token is not None:
        with _pages_lock:
            page = _pages.get(token)
        if page is None or (page.account, page.region) != (account, region):
            raise AwsError(400, "InvalidNextTokenException", "Invalid NextToken.")
        if page.query != query:
            raise AwsError(400, "InvalidNextTokenException",
                           "The NextToken must be passed with the parameters of the call that returned it.")
        events, offset = page.events, page.offset
    else:
        events, offset = _matching(account, region, attribute, start, end, current, category), 0
    chunk = events[offset:offset + maximum]
    result: dict = {"Events": [e.lookup_view() for e in chunk]}
    if offset + maximum < len(events):
        result["NextToken"] = _remember_page(_Page(account, region, query, events, offset + maximum))
    return result


def _matching(account: str, region: str, attribute, start, end, current, category) -> list[Event]:
    if category == "insight":
        return []  # the world makes no Insights events
    oldest = current - RETENTION
    low = max(start, oldest) if start is not None else oldest
    high = end if end is not None else current
    found = [e for e in STORE.events(account, region) if low <= e.time <= high]
    if attribute is not None:
        key, value = attribute
        found = [e for e in found if value in e.attribute(key)]
    return newest_first(found)


def _remember_page(page: _Page) -> str:
    token = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
    with _pages_lock:
        _pages[token] = page
        while len(_pages) > _TOKENS_KEPT:
            _pages.popitem(last=False)
    return token


def reset() -> None:
    STORE.clear()
    with _sessions_lock:
        _sessions.clear()
    with _throttle_lock:
        _buckets.clear()
    with _pages_lock:
        _pages.clear()
