"""SQS as forensnap's daemon relies on it: which queue a request names, and the ``duplicate``
fault (at-least-once delivery made visible).

moto's own SQS already does what the daemon needs (moto-fidelity.md, checked again by the
self-test): visibility timeouts and ChangeMessageVisibility on the wall clock, redrive to the
dead-letter queue after ``maxReceiveCount`` receives, long polling that returns as soon as a
message arrives. A queue URL names the owner account and the queue (``<scheme>://<host>/<account>/
<name>``); moto finds the queue by name in the caller's account, so this module is where the
owner account is read, for the authorisation of cross-account requests.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

_URL_PATH = re.compile(r"^/(\d{12})/([\w-]{1,80}(?:\.fifo)?)/?$")


def queue_of(reference: str | None, default_account: str) -> tuple[str, str] | None:
    """(owner account, queue name) of a QueueUrl (or a bare queue name, which AWS also accepts
    and which names a queue of the caller's account); None when it names no queue."""
    if not reference:
        return None
    if reference.startswith(("http://", "https://")):
        match = _URL_PATH.match(urlparse(reference).path)
        return (match.group(1), match.group(2)) if match else None
    return (default_account, reference) if re.fullmatch(r"[\w-]{1,80}(?:\.fifo)?", reference) else None


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def find_queue(account: str, region: str, name: str):
    """moto's Queue, or None."""
    from moto.sqs.models import sqs_backends

    try:
        return sqs_backends[account][region].queues.get(name)
    except KeyError:
        return None


def request_body(call) -> dict:
    """The parameters of an SQS request: the JSON body (``X-Amz-Target: AmazonSQS.*``, the Rust
    SDK and boto3) or the query-protocol form, flattened to first values."""
    if call.header("x-amz-target"):
        try:
            body = json.loads(call.body or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return {name: values[0] for name, values in call.params.items() if values}


def redeliver(call, body: bytes) -> None:
    """The ``duplicate`` fault: every message this ReceiveMessage answered becomes visible again
    at once (see ``faults``)."""
    from moto.sqs.models import sqs_backends

    params = request_body(call)
    named = queue_of(params.get("QueueUrl"), call.account)
    if named is None:
        return
    account, name = named
    try:
        answer = json.loads(body or b"{}")
        handles = [m["ReceiptHandle"] for m in answer.get("Messages", [])]
    except (ValueError, TypeError, KeyError):
        handles = re.findall(rb"<ReceiptHandle>([^<]+)</ReceiptHandle>", body or b"")
        handles = [h.decode() for h in handles]
    backend = sqs_backends[account][call.region]
    for handle in handles:
        backend.change_message_visibility(name, handle, visibility_timeout=0)
