"""CloudTrail trails delivering to S3, with log file integrity validation, in AWS's formats.

moto 5.2.5 keeps trails (CreateTrail, StartLogging/StopLogging, GetTrail, DescribeTrails) but
delivers nothing. This module owns what a trail writes and what verifies it:

* **Logging intervals** per trail (:class:`TrailState`): StartLogging opens one, StopLogging (or
  DeleteTrail) closes it, whether the call was served (:func:`observe`) or seeded from the world
  file (an attacker's ``StopLogging`` two hours ago: :func:`apply_seeded`). Only events inside an
  interval are delivered.
* **Log files** (:func:`deliver`): the events of the trail's account (every region for a
  multi-region trail, else the home region) not yet delivered, one file per 5-minute period
  that has events, at ``{prefix/}AWSLogs/{account}/CloudTrail/{region}/{YYYY}/{MM}/{DD}/
  {account}_CloudTrail_{region}_{YYYYMMDDTHHmmZ}_{16 random}.json.gz``: gzip of
  ``{"Records": [...]}``, stamped with the time it was delivered (the end of its period, or the
  world clock's now for the current one, or the moment logging stopped).
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/get-and-view-cloudtrail-log-files.html
* **Digest files**, for trails with ``LogFileValidationEnabled``: one per hour of each logging
  interval and source region, each starting where the previous ended, listing the log files
  delivered in its hour (none is still a digest), chained by the previous digest's bucket, key,
  SHA-256 (of its uncompressed content) and signature, at ``{prefix/}AWSLogs/{account}/
  CloudTrail-Digest/{region}/{YYYY}/{MM}/{DD}/{account}_CloudTrail-Digest_{region}_{trail}_
  {home region}_{YYYYMMDDTHHmmssZ}.json.gz`` (digestEndTime). Each is signed SHA256withRSA
  (PKCS#1 v1.5) over ``"{digestEndTime}\\n{bucket}/{key}\\n{hex sha256 of the uncompressed
  digest}\\n{previousDigestSignature or null}"`` with the region's key valid at digestEndTime;
  the signature is the object's ``x-amz-meta-signature`` (hex) and
  ``x-amz-meta-signature-algorithm`` is ``SHA256withRSA`` -- what ``aws cloudtrail
  validate-logs`` checks (awscli/customizations/cloudtrail/validation.py). When logging stops,
  the digest of the hour in which it stopped is the chain's last; a restart begins a new chain
  (its first digest names no previous one).
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-digest-file-structure.html
* **The signing keys** (:func:`list_public_keys`, ``ListPublicKeys``): per region two RSA-2048
  keys made at world start, the first valid from 30 days before it to 3 hours before it, the
  second from then for a year; ``Value`` is the DER PKCS#1 RSAPublicKey (base64 on the wire),
  ``Fingerprint`` the hex MD5 of that DER.
* **GetTrailStatus** from the intervals and deliveries (:func:`trail_status`).
* **Tampering for tests** (:func:`tamper`): a log file changed or deleted, a digest changed or
  deleted, a digest's signature replaced by another digest's.

Files are written straight into moto's S3 backend as the bucket's owner would hold them
(delivery by ``cloudtrail.amazonaws.com`` is not itself a request anyone makes).
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import secrets
import string
import threading
from dataclasses import dataclass, field

from . import clock
from .cloudtrail import STORE, Event, epoch, iso, now, parse_time
from .wire import AwsError, Call

HOUR = datetime.timedelta(hours=1)
PERIOD = datetime.timedelta(minutes=5)
SIGNATURE_ALGORITHM = "SHA256withRSA"
TAMPER_KINDS = ("log-modified", "log-deleted", "digest-modified", "digest-deleted", "signature-replaced")

_lock = threading.RLock()

# --- signing keys ---------------------------------------------------------------------------------


@dataclass
class SigningKey:
    private: object
    der: bytes
    """The public key, DER PKCS#1 RSAPublicKey."""
    start: datetime.datetime
    end: datetime.datetime

    @property
    def fingerprint(self) -> str:
        return hashlib.md5(self.der).hexdigest()  # noqa: S324 - CloudTrail's fingerprint is MD5

    def to_json(self) -> dict:
        return {"Value": base64.b64encode(self.der).decode(), "ValidityStartTime": epoch(self.start),
                "ValidityEndTime": epoch(self.end), "Fingerprint": self.fingerprint}

    def sign(self, message: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self.private.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()


_origin = now()
"""World start: what the signing keys' validity is relative to."""
_keys: dict[str, list[SigningKey]] = {}


def _make_key(start: datetime.datetime, end: datetime.datetime) -> SigningKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return SigningKey(private, der, start, end)


def region_keys(region: str) -> list[SigningKey]:
    """The region's two keys, oldest first (made on first use, valid relative to world start)."""
    with _lock:
        if region not in _keys:
            switch = _origin - datetime.timedelta(hours=3)
            _keys[region] = [_make_key(_origin - datetime.timedelta(days=30), switch),
                             _make_key(switch, _origin + datetime.timedelta(days=365))]
        return _keys[region]


def key_at(region: str, when: datetime.datetime) -> SigningKey:
    """The key that signs a digest ending at ``when`` (a key is valid from its start, inclusive,
    to the next key's start)."""
    for key in reversed(region_keys(region)):
        if key.start <= when <= key.end:
            return key
    raise ValueError(f"no CloudTrail signing key of {region} is valid at {iso(when)}")


def list_public_keys(region: str, body: dict) -> dict:
    """``ListPublicKeys``: the keys valid at some time of [StartTime, EndTime] (each defaults
    to now, so no range answers the current key)."""
    current = now()
    start = parse_time(body["StartTime"], "StartTime") if body.get("StartTime") is not None else current
    end = parse_time(body["EndTime"], "EndTime") if body.get("EndTime") is not None else current
    if start > end:
        raise AwsError(400, "InvalidTimeRangeException", "StartTime must be before EndTime.")
    keys = [k for k in region_keys(region) if k.start <= end and k.end >= start]
    return {"PublicKeyList": [k.to_json() for k in keys]}


# --- trail state ------------------------------------------------------------------------------------


@dataclass
class LogFile:
    region: str
    bucket: str
    key: str
    sha256: str
    oldest: datetime.datetime
    newest: datetime.datetime
    delivered_at: datetime.datetime
    digested: bool = False


@dataclass
class DigestFile:
    region: str
    bucket: str
    key: str
    end: datetime.datetime
    sha256: str
    signature: str


@dataclass
class Chain:
    """The digests of one source region during one logging interval."""

    last_end: datetime.datetime
    previous: DigestFile | None = None
    pending: list[LogFile] = field(default_factory=list)
    done: bool = False


@dataclass
class TrailState:
    arn: str
    account: str
    home_region: str
    name: str
    intervals: list[list] = field(default_factory=list)
    """[start, stop or None] of each time the trail logged, oldest first."""
    delivered: set[str] = field(default_factory=set)
    chains: dict[tuple[str, int], Chain] = field(default_factory=dict)
    log_files: list[LogFile] = field(default_factory=list)
    digests: list[DigestFile] = field(default_factory=list)
    deleted: bool = False
    delivery_error: str | None = None

    @property
    def logging(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] is None and not self.deleted

    def start(self, at: datetime.datetime) -> None:
        if not self.logging:
            self.intervals.append([at, None])
            self.deleted = False

    def stop(self, at: datetime.datetime) -> None:
        if self.logging and at >= self.intervals[-1][0]:
            self.intervals[-1][1] = at


_states: dict[str, TrailState] = {}


def _backend(account: str, region: str):
    from moto.cloudtrail.models import cloudtrail_backends

    return cloudtrail_backends[account][region]


def _moto_trail(account: str, region: str, name: str):
    """The trail ``name`` (a name or an ARN) as moto keeps it, or None."""
    from moto.core.exceptions import JsonRESTError

    try:
        return _backend(account, region).get_trail(name)
    except JsonRESTError:
        return None


def _state_of(trail) -> TrailState:
    with _lock:
        state = _states.get(trail.arn)
        if state is None:
            state = _states[trail.arn] = TrailState(trail.arn, trail.account_id, trail.region_name,
                                                    trail.trail_name)
        return state


def _named(account: str, name: str) -> TrailState | None:
    with _lock:
        for state in _states.values():
            if state.account == account and name in (state.name, state.arn):
                return state
    return None


def observe(call: Call, at: datetime.datetime) -> None:
    """A served StartLogging, StopLogging or DeleteTrail opens or closes the trail's interval at
    the time of the request (so the call's own event is inside the interval it opens or ends)."""
    if call.service != "cloudtrail" or call.operation not in ("StartLogging", "StopLogging", "DeleteTrail"):
        return
    try:
        name = json.loads(call.body or b"{}").get("Name") or ""
    except ValueError:
        return
    with _lock:
        if call.operation == "DeleteTrail":
            state = _named(call.account, name)
            if state is not None:
                state.stop(at)
                state.deleted = True
            return
        trail = _moto_trail(call.account, call.region, name)
        if trail is None:
            return
        state = _state_of(trail)
        if call.operation == "StartLogging":
            state.start(at)
        else:
            state.stop(at)


def begin_history(account: str, region: str, name: str, hours: float) -> TrailState:
    """The seeded trail has been logging for ``hours`` before now (the world file's
    ``history_hours``): its first interval starts then."""
    trail = _moto_trail(account, region, name)
    if trail is None:
        raise ValueError(f"no trail {name!r} in account {account} region {region}")
    started = now() - datetime.timedelta(seconds=round(hours * 3600))
    with _lock:
        state = _state_of(trail)
        if not state.intervals:
            state.intervals.append([started, None])
        elif not state.log_files:
            state.intervals[0][0] = min(state.intervals[0][0], started)
        return state


def apply_seeded(account: str, events: list[Event]) -> None:
    """Seeded StopLogging / StartLogging / DeleteTrail events that succeeded act on the trail
    they name (``requestParameters.name``), at their time."""
    control = [e for e in events
               if e.record["eventSource"] == "cloudtrail.amazonaws.com" and "errorCode" not in e.record
               and e.record["eventName"] in ("StartLogging", "StopLogging", "DeleteTrail")]
    with _lock:
        for event in sorted(control, key=lambda e: e.time):
            name = (event.record.get("requestParameters") or {}).get("name") or ""
            state = _named(account, name)
            if state is None:
                continue
            if event.record["eventName"] == "StartLogging":
                state.start(event.time)
            else:
                state.stop(event.time)
                state.deleted = event.record["eventName"] == "DeleteTrail"


# --- S3 ---------------------------------------------------------------------------------------------


def _s3(bucket: str):
    """moto's S3 backend that holds ``bucket``, or None."""
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return None
    partition, account = owner
    return s3_backends[account][partition]


class NoSuchBucket(Exception):
    """The trail's bucket is gone: nothing is delivered (GetTrailStatus names the error)."""


def _put(bucket: str, key: str, data: bytes, metadata: dict | None = None,
         modified: datetime.datetime | None = None) -> None:
    backend = _s3(bucket)
    if backend is None:
        raise NoSuchBucket(bucket)
    obj = backend.put_object(bucket, key, data, disable_notification=True)
    if metadata:
        obj.set_metadata(dict(metadata))
    obj.last_modified = modified or clock.now()


def _get(bucket: str, key: str):
    backend = _s3(bucket)
    obj = backend.get_object(bucket, key) if backend is not None else None
    if obj is None:
        raise ValueError(f"s3://{bucket}/{key} does not exist (deleted already?)")
    return obj


def _delete(bucket: str, key: str) -> None:
    _s3(bucket).delete_object(bucket, key)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _prefixed(prefix: str | None, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


# --- delivery ---------------------------------------------------------------------------------------


def deliver() -> dict:
    """Deliver, for every trail that has logged, the log files of its events not yet delivered
    (up to the world clock's now) and the digests of every hour passed since its last digest."""
    current = now()
    logs = digests = 0
    with _lock:
        for state in list(_states.values()):
            trail = _moto_trail(state.account, state.home_region, state.arn)
            if trail is None or not state.intervals:
                continue
            try:
                logs += _deliver_logs(state, trail, current)
                if trail.log_validation:
                    digests += _deliver_digests(state, trail, current)
                state.delivery_error = None
            except NoSuchBucket:
                state.delivery_error = "NoSuchBucket"
    return {"log_files": logs, "digest_files": digests}


def _regions(state: TrailState, trail) -> list[str]:
    regions = [state.home_region]
    if trail.is_multi_region:
        regions += [r for r in STORE.regions(state.account) if r != state.home_region]
    return regions


def _chain(state: TrailState, region: str, index: int) -> Chain:
    key = (region, index)
    if key not in state.chains:
        state.chains[key] = Chain(last_end=state.intervals[index][0])
    return state.chains[key]


def _deliver_logs(state: TrailState, trail, current: datetime.datetime) -> int:
    written = 0
    for index, (start, stop) in enumerate(state.intervals):
        upto = current if stop is None else min(stop, current)
        for region in _regions(state, trail):
            events = [e for e in STORE.events(state.account, region)
                      if start <= e.time <= upto and e.event_id not in state.delivered]
            if not events and region != state.home_region:
                continue
            chain = _chain(state, region, index)
            periods: dict[datetime.datetime, list[Event]] = {}
            for event in events:
                periods.setdefault(_period(event.time), []).append(event)
            for period in sorted(periods):
                delivered_at = min(period + PERIOD, current, stop or current)
                delivered_at = max(delivered_at, chain.last_end)
                log = _write_log(state, trail, region, periods[period], delivered_at)
                chain.pending.append(log)
                written += 1
    return written


def _period(when: datetime.datetime) -> datetime.datetime:
    return when.replace(minute=when.minute - when.minute % 5, second=0, microsecond=0)


def _write_log(state: TrailState, trail, region: str, events: list[Event],
               delivered_at: datetime.datetime) -> LogFile:
    events = sorted(events, key=lambda e: (e.time, e.event_id))
    content = json.dumps({"Records": [e.record for e in events]}, separators=(",", ":")).encode()
    unique = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
    key = _prefixed(trail.s3_key_prefix, (
        f"AWSLogs/{state.account}/CloudTrail/{region}/{delivered_at:%Y/%m/%d}/"
        f"{state.account}_CloudTrail_{region}_{delivered_at:%Y%m%dT%H%MZ}_{unique}.json.gz"))
    _put(trail.bucket_name, key, _gzip(content), modified=delivered_at)
    state.delivered.update(e.event_id for e in events)
    log = LogFile(region, trail.bucket_name, key, hashlib.sha256(content).hexdigest(),
                  events[0].time, events[-1].time, delivered_at)
    state.log_files.append(log)
    return log


def _deliver_digests(state: TrailState, trail, current: datetime.datetime) -> int:
    written = 0
    for (region, index), chain in sorted(state.chains.items(), key=lambda item: (item[0][1], item[0][0])):
        stop = state.intervals[index][1]
        while not chain.done:
            if stop is not None and chain.last_end >= stop:
                chain.done = True  # the digest of the hour logging stopped in was the last
                break
            end = chain.last_end + HOUR
            if end > current:
                break
            final = stop is not None and end >= stop
            files = [f for f in chain.pending if f.delivered_at < end or final]
            chain.pending = [f for f in chain.pending if f not in files]
            chain.previous = _write_digest(state, trail, region, chain, end, files)
            chain.last_end = end
            written += 1
    return written


def _write_digest(state: TrailState, trail, region: str, chain: Chain, end: datetime.datetime,
                  files: list[LogFile]) -> DigestFile:
    bucket = trail.bucket_name
    key = _prefixed(trail.s3_key_prefix, (
        f"AWSLogs/{state.account}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/"
        f"{state.account}_CloudTrail-Digest_{region}_{state.name}_{state.home_region}_{end:%Y%m%dT%H%M%SZ}.json.gz"))
    signing = key_at(region, end)
    previous = chain.previous
    digest = {
        "awsAccountId": state.account,
        "digestStartTime": iso(chain.last_end),
        "digestEndTime": iso(end),
        "digestS3Bucket": bucket,
        "digestS3Object": key,
        "digestPublicKeyFingerprint": signing.fingerprint,
        "digestSignatureAlgorithm": SIGNATURE_ALGORITHM,
        "newestEventTime": iso(max(f.newest for f in files)) if files else None,
        "oldestEventTime": iso(min(f.oldest for f in files)) if files else None,
        "previousDigestS3Bucket": previous.bucket if previous else None,
        "previousDigestS3Object": previous.key if previous else None,
        "previousDigestHashValue": previous.sha256 if previous else None,
        "previousDigestHashAlgorithm": "SHA-256" if previous else None,
        "previousDigestSignature": previous.signature if previous else None,
        "logFiles": [{"s3Bucket": f.bucket, "s3Object": f.key, "hashValue": f.sha256,
                      "hashAlgorithm": "SHA-256", "newestEventTime": iso(f.newest),
                      "oldestEventTime": iso(f.oldest)} for f in files],
    }
    content = json.dumps(digest, separators=(",", ":")).encode()
    sha256 = hashlib.sha256(content).hexdigest()
    signature = signing.sign(string_to_sign(digest, content))
    _put(bucket, key, _gzip(content), {"x-amz-meta-signature": signature,
                                       "x-amz-meta-signature-algorithm": SIGNATURE_ALGORITHM},
         modified=end)
    for f in files:
        f.digested = True
    made = DigestFile(region, bucket, key, end, sha256, signature)
    state.digests.append(made)
    return made


def string_to_sign(digest: dict, content: bytes) -> bytes:
    """What a digest's signature signs (validate-logs' ``_create_string_to_sign``)."""
    previous = digest["previousDigestSignature"]
    return (f"{digest['digestEndTime']}\n{digest['digestS3Bucket']}/{digest['digestS3Object']}\n"
            f"{hashlib.sha256(content).hexdigest()}\n{'null' if previous is None else previous}").encode()


# --- GetTrailStatus ------------------------------------------------------------------------------------


def trail_status(account: str, region: str, name: str) -> dict:
    """``GetTrailStatus`` of a trail: moto finds it (and answers its errors), the world's
    intervals and deliveries fill it."""
    from moto.core.exceptions import JsonRESTError

    backend = _backend(account, region)
    try:
        backend.get_trail_status(name)
        trail = next(t for t in backend.describe_trails(include_shadow_trails=True)
                     if name in (t.trail_name, t.arn))
    except JsonRESTError as err:
        raise AwsError(err.code, err.error_type, err.message) from None
    with _lock:
        state = _states.get(trail.arn)
        return _status(state)


def _status(state: TrailState | None) -> dict:
    desc = {"IsLogging": bool(state and state.logging)}
    strings = {"LatestDeliveryAttemptTime": "", "LatestNotificationAttemptTime": "",
               "LatestNotificationAttemptSucceeded": "", "LatestDeliveryAttemptSucceeded": "",
               "TimeLoggingStarted": "", "TimeLoggingStopped": ""}
    if state is not None and state.intervals:
        start, stop = state.intervals[-1]
        desc["StartLoggingTime"] = epoch(start)
        strings["TimeLoggingStarted"] = iso(start)
        stopped = stop or next((s for _, s in reversed(state.intervals) if s is not None), None)
        if stopped is not None:
            desc["StopLoggingTime"] = epoch(stopped)
            strings["TimeLoggingStopped"] = iso(stopped)
        if state.log_files:
            latest = max(f.delivered_at for f in state.log_files)
            desc["LatestDeliveryTime"] = epoch(latest)
            strings["LatestDeliveryAttemptTime"] = strings["LatestDeliveryAttemptSucceeded"] = iso(latest)
        if state.digests:
            desc["LatestDigestDeliveryTime"] = epoch(max(d.end for d in state.digests))
        if state.delivery_error:
            desc["LatestDeliveryError"] = state.delivery_error
    desc.update(strings)
    return desc


# --- seeding ---------------------------------------------------------------------------------------------


def seed(payload: dict) -> dict:
    """``POST /_forensnap/cloudtrail/seed``: a member's seeded history. ``trail`` (optional,
    ``{"name", "history_hours"}``) has been logging for that long; ``events`` are added (see
    ``cloudtrail.seeded_event``); seeded StopLogging/StartLogging act on the trail they name;
    then every trail delivers what it has."""
    from .cloudtrail import seed_events

    account, region = str(payload["account"]), str(payload["region"])
    out: dict = {}
    spec = payload.get("trail")
    if spec:
        hours = float(spec.get("history_hours", 6))
        if not 0 < hours <= 720:
            raise ValueError(f"history_hours must be within 0..720 (30 days), not {hours}")
        state = begin_history(account, region, spec["name"], hours)
        out["trail_arn"] = state.arn
    events = seed_events(account, region, payload.get("events") or [])
    apply_seeded(account, events)
    out["events"] = len(events)
    out.update(deliver())
    return out


# --- tampering (tests) -------------------------------------------------------------------------------------


def tamper(payload: dict) -> dict:
    """``POST /_forensnap/cloudtrail/tamper`` ``{"account", "region", "kind", "index", "trail"}``:
    change one delivered file as an intruder with write access to the bucket would. ``trail``
    (optional, a name or ARN) picks the trail when the account has several (default: the first
    that logged). ``index`` counts that kind's files of the region from the oldest; by default a
    middle one that a digest covers (log kinds) or that has a successor digest (digest kinds).
    Returns the key changed."""
    account, region, kind = str(payload["account"]), str(payload["region"]), payload["kind"]
    if kind not in TAMPER_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(TAMPER_KINDS)}")
    with _lock:
        state = _tampered_trail(account, region, payload.get("trail"))
        if kind.startswith("log-"):
            files = [f for f in state.log_files if f.region == region]
            chosen = _pick(files, payload.get("index"), [f for f in files if f.digested], "log")
            if kind == "log-deleted":
                _delete(chosen.bucket, chosen.key)
            else:
                _modify_log(chosen)
            return {"key": chosen.key}
        digests = [d for d in state.digests if d.region == region]
        chosen = _pick(digests, payload.get("index"), digests[:-1], "digest")
        if kind == "digest-deleted":
            _delete(chosen.bucket, chosen.key)
        elif kind == "digest-modified":
            _modify_digest(chosen)
        else:
            position = digests.index(chosen)
            other = digests[position + 1] if position + 1 < len(digests) else digests[position - 1]
            if other is chosen:
                raise ValueError("signature-replaced needs two digests")
            obj = _get(chosen.bucket, chosen.key)
            obj.set_metadata({"x-amz-meta-signature": other.signature})
        return {"key": chosen.key}


def _tampered_trail(account: str, region: str, name: str | None) -> TrailState:
    candidates = [s for s in _states.values() if s.account == account
                  and (name is None or name in (s.name, s.arn))
                  and any(f.region == region for f in s.log_files + s.digests)]
    if not candidates:
        raise ValueError(f"no trail of account {account} delivered files for {region}")
    return candidates[0]  # several: the first that logged, unless 'trail' names one


def _pick(files: list, index, default_from: list, what: str):
    if index is not None:
        index = int(index)
        if not 0 <= index < len(files):
            raise ValueError(f"index {index}: there are {len(files)} {what} files")
        return files[index]
    if not default_from:
        raise ValueError(f"no {what} file to tamper with by default (deliver first)")
    return default_from[(len(default_from) - 1) // 2]


def _modify_log(log: LogFile) -> None:
    """One record's source address changed: the file is still valid JSON, with its key."""
    obj = _get(log.bucket, log.key)
    document = json.loads(gzip.decompress(bytes(obj.value)))
    records = document.get("Records") or [{}]
    records[0]["sourceIPAddress"] = "198.51.100.66"
    document["Records"] = records
    metadata = dict(obj.metadata)
    _put(log.bucket, log.key, _gzip(json.dumps(document, separators=(",", ":")).encode()), metadata)


def _modify_digest(digest: DigestFile) -> None:
    """A log file's hash (or, with none, the newest event time) changed; signature kept."""
    obj = _get(digest.bucket, digest.key)
    document = json.loads(gzip.decompress(bytes(obj.value)))
    if document.get("logFiles"):
        document["logFiles"][0]["hashValue"] = hashlib.sha256(b"forged").hexdigest()
    else:
        document["newestEventTime"] = document["digestEndTime"]
    metadata = dict(obj.metadata)
    _put(digest.bucket, digest.key, _gzip(json.dumps(document, separators=(",", ":")).encode()), metadata)


def reset() -> None:
    global _origin
    with _lock:
        _states.clear()
        _keys.clear()
        _origin = now()
