"""The EBS direct APIs that read snapshots: ListSnapshotBlocks and GetSnapshotBlock.

moto's own EBS store cannot read snapshots made by EC2, so these two operations are served here
from the snapshot's registered content (see ``volumes``), with AWS's shapes: 524,288-byte blocks,
``MaxResults`` 100..10,000, ``NextToken`` paging (valid 60 minutes), ``StartingBlockIndex``,
block tokens (valid 7 days), 404 for unknown snapshots, 400 for bad parameters, and the
``x-amz-Checksum`` / ``x-amz-Checksum-Algorithm`` / ``x-amz-Data-Length`` headers.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import datetime
import hashlib
import hmac
import json
import re

from . import BLOCK_SIZE, clock
from .volumes import REGISTRY, Content
from .wire import AwsError, Call

PAGE_TOKEN_TTL = datetime.timedelta(minutes=60)
BLOCK_TOKEN_TTL = datetime.timedelta(days=7)
MIN_RESULTS, MAX_RESULTS = 100, 10_000
_SECRET = b"forensnap-world-token-key"
_BLOCKS = re.compile(r"^/snapshots/([^/]+)/blocks/?$")
_BLOCK = re.compile(r"^/snapshots/([^/]+)/blocks/(\d+)$")


def handles(call: Call) -> bool:
    return call.service == "ebs" and call.method == "GET" and bool(
        _BLOCKS.match(call.path) or _BLOCK.match(call.path)
    )


def _epoch(moment: datetime.datetime) -> int:
    return calendar.timegm(moment.timetuple())


def _sign(payload: dict) -> str:
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(_SECRET, raw, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")


def _unsign(token: str) -> dict | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body, mac = raw[:-12], raw[-12:]
        if not hmac.compare_digest(mac, hmac.new(_SECRET, body, hashlib.sha256).digest()[:12]):
            return None
        return json.loads(body)
    except (ValueError, json.JSONDecodeError):
        return None


def _snapshot(call: Call, snapshot_id: str):
    """The caller's own completed snapshot and its content, or the AWS error for why not."""
    from .patches import _ec2_backend, visible_snapshot

    account = call.account
    snapshot = _ec2_backend(account, call.region).snapshots.get(snapshot_id)
    if snapshot is None:
        if visible_snapshot(account, call.region, snapshot_id) is not None:
            raise AwsError(403, "AccessDeniedException",
                           f"Snapshot {snapshot_id} is shared with account {account} but owned by "
                           "another account; copy it first", "UNAUTHORIZED_ACCOUNT")
        raise AwsError(404, "ResourceNotFoundException",
                       f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND")
    if snapshot.status != "completed":
        raise AwsError(400, "ValidationException",
                       f"Snapshot {snapshot_id} is {snapshot.status}; only completed snapshots "
                       "can be read.", "INVALID_SNAPSHOT_ID")
    content = REGISTRY.snapshot(snapshot_id)
    if content is None:  # a volume nobody seeded reads as zeros, like a new EBS volume
        content = Content("", 0, snapshot.volume.size * (1 << 30), ())
    return snapshot, content


def _int_param(call: Call, name: str, default: int | None) -> int | None:
    raw = call.param(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise AwsError(400, "ValidationException", f"{name} must be an integer, got {raw!r}",
                       "INVALID_PARAMETER_VALUE") from None


def list_snapshot_blocks(call: Call):
    snapshot_id = _BLOCKS.match(call.path).group(1)
    snapshot, content = _snapshot(call, snapshot_id)
    max_results = _int_param(call, "maxResults", MAX_RESULTS)
    if not MIN_RESULTS <= max_results <= MAX_RESULTS:
        raise AwsError(400, "ValidationException",
                       f"MaxResults must be between {MIN_RESULTS} and {MAX_RESULTS}",
                       "INVALID_PARAMETER_VALUE")
    start = _int_param(call, "startingBlockIndex", 0)
    if start < 0:
        raise AwsError(400, "ValidationException", "StartingBlockIndex must be >= 0",
                       "INVALID_PARAMETER_VALUE")
    now = clock.now()
    token = call.param("pageToken")
    if token:
        page = _unsign(token)
        if not page or page.get("s") != snapshot_id:
            raise AwsError(400, "ValidationException", "The pagination token is invalid.",
                           "INVALID_PAGE_TOKEN")
        if page["e"] < _epoch(now):
            raise AwsError(400, "ValidationException", "The pagination token has expired.",
                           "INVALID_PAGE_TOKEN")
        start = max(start, page["i"])
    position = bisect.bisect_left(content.blocks, start)
    chosen = content.blocks[position:position + max_results]
    block_expiry = _epoch(now + BLOCK_TOKEN_TTL)
    result = {
        "Blocks": [
            {"BlockIndex": i, "BlockToken": _sign({"s": snapshot_id, "i": i, "e": block_expiry})}
            for i in chosen
        ],
        "ExpiryTime": block_expiry,
        "VolumeSize": content.size_gib,
        "BlockSize": BLOCK_SIZE,
    }
    if position + max_results < len(content.blocks):
        next_index = content.blocks[position + max_results]
        result["NextToken"] = _sign(
            {"s": snapshot_id, "i": next_index, "e": _epoch(now + PAGE_TOKEN_TTL)}
        )
    return 200, [("Content-Type", "application/json")], json.dumps(result).encode()


def get_snapshot_block(call: Call, corrupt: bool = False):
    match = _BLOCK.match(call.path)
    snapshot_id, index = match.group(1), int(match.group(2))
    snapshot, content = _snapshot(call, snapshot_id)
    token = call.param("blockToken")
    if not token:
        raise AwsError(400, "ValidationException", "BlockToken is required.", "INVALID_BLOCK_TOKEN")
    if index * BLOCK_SIZE >= content.size_bytes:
        raise AwsError(400, "ValidationException",
                       f"Block index {index} is outside snapshot {snapshot_id}.", "INVALID_BLOCK")
    claims = _unsign(token)
    if not claims or claims.get("s") != snapshot_id or claims.get("i") != index:
        raise AwsError(400, "ValidationException",
                       f"The block token is not valid for block {index} of {snapshot_id}.",
                       "INVALID_BLOCK_TOKEN")
    if claims["e"] < _epoch(clock.now()):
        raise AwsError(400, "ValidationException", "The block token has expired.",
                       "INVALID_BLOCK_TOKEN")
    data = content.read_block(index) if content.path else bytes(BLOCK_SIZE)
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if corrupt:
        flipped = bytearray(data)
        flipped[(index * 7919) % len(flipped)] ^= 0xFF
        data = bytes(flipped)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("x-amz-Data-Length", str(len(data))),
        ("x-amz-Checksum", checksum),
        ("x-amz-Checksum-Algorithm", "SHA256"),
    ]
    return 200, headers, data
