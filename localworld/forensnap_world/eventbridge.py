"""EventBridge as forensnap's intake relies on it: findings put on the intake bus become
messages in the request queue, as AWS delivers them.

moto 5.2.5 already matches event patterns (nested ``detail`` fields included) and sends a
matching event to an SQS target. Fixed here:

* **the envelope**: moto's SQS message lacks ``account``; AWS delivers the whole event
  (``version, id, detail-type, source, account, time, region, resources, detail``).
  https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html
* **cross-account PutEvents**: an entry whose ``EventBusName`` is the ARN of another account's
  bus (the Security Hub / GuardDuty administrator forwarding findings) is put on that bus, with
  ``account`` the sender's, as EventBridge does; moto looked for the bus in the sender's account
  and answered ResourceNotFoundException. (Whether the sender may is decided before, by the bus
  policy: ``policy.authorize``.)
* **disabled rules** match nothing (moto delivered through them).
* **delivery is authorised**: with ``policies`` on, EventBridge (``events.amazonaws.com``) may
  send to the queue only if the queue policy allows it ``sqs:SendMessage`` (``aws:SourceArn`` is
  the rule, ``aws:SourceAccount`` its account), and, for a queue on a customer managed KMS key,
  only if the key policy allows it ``kms:GenerateDataKey`` and ``kms:Decrypt`` (SQS calls KMS on
  its behalf). A refused delivery is dropped -- the PutEvents call still succeeds, as on AWS,
  where the rule's invocation fails -- and the decision is in the authorisation log with
  principal ``events.amazonaws.com``. moto sent unconditionally, and to a queue of the rule's
  account whatever account the target ARN named.

Not modelled: retries and target dead-letter queues of a failed delivery, input transformers
beyond moto's, archives/replays, bus-to-bus targets' authorisation.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import warnings

log = logging.getLogger("forensnap_world")

_applied = False
_lock = threading.Lock()

EVENT_TEMPLATE = ('{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
                  '"account": "<account>", "time": <time>, "region": "<region>", '
                  '"resources": <resources>, "detail": <detail>}')
"""The event as AWS delivers it to a target without an input transformer (moto's template
without ``account``, in AWS's key order)."""

FAILED_DELIVERIES: list[dict] = []
"""Every delivery refused since the last reset: rule, target, reason."""


def reset() -> None:
    with _lock:
        FAILED_DELIVERIES.clear()


def apply() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        _patch_envelope()
        _patch_put_events()
        _patch_rule_delivery()
        _applied = True


def _patch_envelope() -> None:
    from moto.events.utils import EventTemplateParser

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EVENT_TEMPLATE


def bus_owner(bus: str | None, account: str, region: str) -> tuple[str, str, str]:
    """(account, region, bus name) an entry's ``EventBusName`` (a name, an ARN, or absent: the
    default bus) names, for a sender in ``account``/``region``."""
    if not bus:
        return account, region, "default"
    if bus.startswith("arn:"):
        parts = bus.split(":", 5)
        if len(parts) == 6 and parts[5].startswith("event-bus/"):
            return parts[4], parts[3], parts[5][len("event-bus/"):]
    return account, region, bus


def _patch_put_events() -> None:
    from moto.core.utils import unix_time
    from moto.events.exceptions import ValidationException
    from moto.events.models import EventsBackend, events_backends
    from moto.events.utils import _BASE_EVENT_MESSAGE
    from moto.moto_api._internal import mock_random as random

    def put_events(self, events):
        # moto's put_events (same checks and messages), with each entry put on the bus it names,
        # in whichever account owns it, and ``account`` the sender's.
        if len(events) > 10:
            raise ValidationException(
                "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed "
                "to satisfy constraint: Member must have length less than or equal to 10")
        entries = []
        for event in events:
            for field, name in (("Source", "Source"), ("DetailType", "DetailType"), ("Detail", "Detail")):
                if not event.get(field):
                    entries.append({"ErrorCode": "InvalidArgument",
                                    "ErrorMessage": f"Parameter {name} is not valid. Reason: {name} is a required argument."})
                    break
            else:
                try:
                    detail = json.loads(event["Detail"])
                except ValueError:
                    entries.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
                    continue
                if not isinstance(detail, dict):
                    warnings.warn(f"EventDetail should be of type dict - types such as {type(detail)} "
                                  "are ignored by AWS", stacklevel=2)
                event_id = str(random.uuid4())
                entries.append({"EventId": event_id})
                account, region, name = bus_owner(event.get("EventBusName"), self.account_id, self.region_name)
                owner = events_backends[account][region]
                bus = owner.describe_event_bus(name)
                for rule in list(bus.rules.values()):
                    message = copy.deepcopy(_BASE_EVENT_MESSAGE)
                    message.update({
                        "id": event_id, "detail-type": event["DetailType"], "source": event["Source"],
                        "account": self.account_id, "time": event.get("Time", unix_time()),
                        "region": region, "resources": event.get("Resources", []), "detail": detail,
                        "ingestion-time": unix_time(),
                    })
                    rule.send_to_targets(message)
        return entries

    EventsBackend.put_events = put_events


def _patch_rule_delivery() -> None:
    from moto.events.models import Rule

    original_send = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if self.state != "ENABLED":
            return  # a disabled rule matches nothing
        return original_send(self, original_event, transform_input)

    def _send_to_sqs_queue(self, resource_id, event, group_id=None):
        from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp
        from moto.sqs.models import sqs_backends

        from .patches import Settings
        from .policy import authorize as authz

        target = next((t["Arn"] for t in self.targets
                       if t["Arn"].startswith("arn:") and t["Arn"].split(":")[2] == "sqs"
                       and t["Arn"].split(":", 5)[5] == resource_id), None)
        parts = target.split(":", 5) if target else None
        account, region = (parts[4], parts[3]) if parts else (self.account_id, self.region_name)
        if "time" in event and not isinstance(event["time"], str):
            event["time"] = iso_8601_datetime_without_milliseconds(utcfromtimestamp(float(event["time"])))
        backend = sqs_backends[account][region]
        if group_id:
            attributes = backend.get_queue_attributes(queue_name=resource_id,
                                                      attribute_names=["ContentBasedDeduplication"])
            if attributes["ContentBasedDeduplication"] == "false":
                warnings.warn("To let EventBridge send messages to your SQS FIFO queue, you must "
                              "enable content-based deduplication.", stacklevel=2)
                return
        if Settings.policies:
            decision = authz.authorize_delivery("events.amazonaws.com", self.arn, self.account_id,
                                                account, region, resource_id)
            if not decision.allowed:
                failure = {"rule": self.arn, "target": target, "reason": decision.reason}
                with _lock:
                    FAILED_DELIVERIES.append(failure)
                log.warning("EventBridge delivery refused: %s", failure)
                return
        backend.send_message(queue_name=resource_id, message_body=json.dumps(event), group_id=group_id)

    Rule.send_to_targets = send_to_targets
    Rule._send_to_sqs_queue = _send_to_sqs_queue
