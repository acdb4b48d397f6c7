"""Run-time fault injection, switched on and off by tests through ``/_forensnap/faults``.

A rule matches a service and operation (``*`` for any) and fires on a chosen subset of the
matching requests: with a probability (seeded, so runs repeat), on every Nth, after the first
``after`` matches, and at most ``count`` times. Kinds:

* ``throttle`` -- the service's own throttling error (EBS ``RequestThrottledException``, S3
  ``SlowDown``, EC2 ``RequestLimitExceeded``, KMS, CloudTrail and SSM ``ThrottlingException``,
  STS ``Throttling``);
* ``error``    -- a 5xx (``status``, default 500) with the service's internal-error code;
* ``drop``     -- the connection is closed without any response;
* ``latency``  -- the request is delayed by ``latency_ms`` and then served normally;
* ``corrupt``  -- GetSnapshotBlock: one byte of the block is flipped while the
  ``x-amz-Checksum`` header still describes the true bytes; S3 UploadPart: the part is stored, but the checksum S3 echoes is another value (an answer
  that does not describe the part sent).
* ``duplicate`` -- SQS ReceiveMessage only: the messages it answers are made visible again at
  once (the receive's visibility timeout is lost), so the next ReceiveMessage -- by this consumer
  or another -- gets them a second time: same MessageId and body, a new ReceiptHandle,
  ``ApproximateReceiveCount`` one higher. SQS standard queues deliver at least once; this is the
  duplicate a consumer must tolerate (both receipt handles delete the message, as moto keeps
  every handle a message had).
* ``kill``     -- the client process that sent the request is killed with SIGKILL (see
  ``killer``), ``when`` = ``before`` the request is applied (it never is) or ``after`` it is
  applied and before the answer is sent (the client never learns it was). ``process`` names
  the executable (``/proc/PID/comm``) that may be killed and is required: a rule never kills
  anything else. A match whose client is not such a live process does not fire (the rule stays
  armed), so a rule fires only where it really killed.

``match`` (optional, any kind) is a regular expression searched in the request's subject,
``"<Operation> <path>?<query>"`` plus ``&<form body>`` for form-encoded requests (EC2, STS), e.g.
``^PutObject /bucket/cases/IR-1/custody/events/`` or ``^UploadPart .*[?&]partNumber=3(&|$)`` or
``^DeleteSnapshot .*SnapshotId=snap-1``. A rule records the subjects it fired on (``fired_on``).

SQS, DynamoDB and EventBridge rules name operations as their ``X-Amz-Target`` does
(``ReceiveMessage``, ``PutItem``, ``TransactWriteItems``, ``PutEvents``). ``code`` (optional)
replaces a ``throttle`` or ``error`` rule's error code, e.g. DynamoDB's ``ThrottlingException``
instead of its default ``ProvisionedThroughputExceededException``.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field

KINDS = ("throttle", "error", "drop", "latency", "corrupt", "duplicate", "kill")
WHEN = ("before", "after")
FIRED_ON_KEPT = 1000

THROTTLE = {
    "ebs": (400, "RequestThrottledException", "ACCOUNT_THROTTLED"),
    "s3": (503, "SlowDown", None),
    "ec2": (503, "RequestLimitExceeded", None),
    "kms": (400, "ThrottlingException", None),
    "sts": (400, "Throttling", None),
    # SQS's JSON protocol error for a throttled request (its query-protocol code travels in
    # x-amzn-query-error); the SDKs retry it as throttling.
    "sqs": (400, "ThrottlingException", None),
    # DynamoDB data-plane throttling (on-demand tables too); ``code`` picks ThrottlingException.
    "dynamodb": (400, "ProvisionedThroughputExceededException", None),
    "events": (400, "ThrottlingException", None),
    # CloudTrail (LookupEvents' own 2 requests/s quota answers the same: ``cloudtrail``).
    "cloudtrail": (400, "ThrottlingException", None),
    "ssm": (400, "ThrottlingException", None),
}
INTERNAL = {
    "ebs": "InternalServerException",
    "s3": "InternalError",
    "ec2": "InternalError",
    "kms": "KMSInternalException",
    "sts": "InternalFailure",
    "sqs": "InternalFailure",
    "dynamodb": "InternalServerError",
    "events": "InternalException",
    "cloudtrail": "InternalFailure",
    "ssm": "InternalServerError",
}


@dataclass
class Rule:
    kind: str
    service: str = "*"
    operation: str = "*"
    probability: float = 1.0
    every: int = 1
    after: int = 0
    count: int | None = None
    status: int = 500
    latency_ms: int = 0
    seed: int = 0
    code: str | None = None
    match: str | None = None
    when: str = "after"
    process: str | None = None
    id: int = 0
    matched: int = 0
    fired: int = 0
    fired_on: list[str] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _match: re.Pattern | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("_rng")
        data.pop("_match")
        return data


class Faults:
    """The active rules; thread-safe, because the server serves requests on many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._next_id = 1

    def add(self, spec: dict) -> Rule:
        allowed = {"kind", "service", "operation", "probability", "every", "after", "count",
                   "status", "latency_ms", "seed", "code", "match", "when", "process"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        rule = Rule(**spec)
        if rule.kind not in KINDS:
            raise ValueError(f"fault kind {rule.kind!r} is not one of {KINDS}")
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        if rule.every < 1:
            raise ValueError("every must be >= 1")
        if rule.kind == "error" and not 500 <= rule.status <= 599:
            raise ValueError("an error fault needs a 5xx status")
        if rule.kind == "corrupt" and rule.operation not in ("GetSnapshotBlock", "UploadPart", "*"):
            raise ValueError("corrupt applies to GetSnapshotBlock and S3 UploadPart only")
        if rule.kind == "duplicate" and (rule.service not in ("sqs", "*")
                                         or rule.operation not in ("ReceiveMessage", "*")):
            raise ValueError("duplicate applies to SQS ReceiveMessage only")
        if rule.code is not None and rule.kind not in ("throttle", "error"):
            raise ValueError("code applies to throttle and error rules only")
        if rule.kind == "kill" and not rule.process:
            raise ValueError("a kill rule names the process it may kill (process, e.g. \"forensnap\")")
        if rule.kind == "kill" and rule.when not in WHEN:
            raise ValueError(f"when must be one of {WHEN}")
        if rule.kind != "kill" and (rule.process is not None or "when" in spec):
            raise ValueError("process and when apply to kill rules only")
        if rule.match is not None:
            try:
                rule._match = re.compile(rule.match)
            except re.error as err:
                raise ValueError(f"match {rule.match!r} is not a regular expression: {err}") from None
        rule._rng = random.Random(rule.seed)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def pick(self, service: str, operation: str, subject: str = "",
             client=lambda: None) -> list[tuple[Rule, int | None]]:
        """The rules that fire for this request (at most one of each kind, first added wins),
        each with the pid to kill for a ``kill`` rule. ``client`` finds the requesting process
        (pid, name), called only when a kill rule would fire."""
        fired: list[tuple[Rule, int | None]] = []
        kinds: set[str] = set()
        with self._lock:
            for rule in self._rules:
                if rule.service not in ("*", service) or rule.operation not in ("*", operation):
                    continue
                if rule._match is not None and not rule._match.search(subject):
                    continue
                if rule.kind == "corrupt" and (service, operation) not in (
                        ("ebs", "GetSnapshotBlock"), ("s3", "UploadPart")):
                    continue
                if rule.kind == "duplicate" and (service, operation) != ("sqs", "ReceiveMessage"):
                    continue
                rule.matched += 1
                if rule.kind in kinds or rule.matched <= rule.after:
                    continue
                if (rule.matched - rule.after) % rule.every != 0:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule._rng.random() >= rule.probability:
                    continue
                pid = None
                if rule.kind == "kill":
                    pid, name = client() or (None, None)
                    if pid is None or name != rule.process:
                        continue
                rule.fired += 1
                if len(rule.fired_on) < FIRED_ON_KEPT:
                    rule.fired_on.append(subject)
                kinds.add(rule.kind)
                fired.append((rule, pid))
        return fired


FAULTS = Faults()
