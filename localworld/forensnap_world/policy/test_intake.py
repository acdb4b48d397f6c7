"""The daemon's queue, case table and findings intake, as the templates deploy them, in a world
that evaluates every policy: the collector role can make each call it is granted on its own
queue and table and nothing else; other accounts cannot touch them; EventBridge delivers
findings to the queue only through the two intake rules (queue and key policies); only the
event source accounts may put events on the intake bus. Also the SQS faults.

Run: ``cd localworld && $PY -m unittest forensnap_world.policy.test_intake -v``.
"""

from __future__ import annotations

import json
import urllib.request

from botocore.exceptions import ClientError

from . import authorize as authz
from . import templates as t
from .test_must_deny import (ALLOW_ALL, EXTERNAL_ID, FORENSIC, MEMBERS, OUTSIDER, REGION, WorldTestCase,
                             control)

SECURITY = "555555555555"
"""The organisation's security tooling account (GuardDuty / Security Hub administrator)."""

GUARDDUTY = {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding",
             "Detail": json.dumps({"schemaVersion": "2.0", "accountId": MEMBERS[0], "region": REGION,
                                   "type": "Backdoor:EC2/C&CActivity.B!DNS", "severity": 8,
                                   "resource": {"resourceType": "Instance",
                                                "instanceDetails": {"instanceId": "i-0123456789abcdef0"}}})}
SECURITY_HUB = {"Source": "aws.securityhub", "DetailType": "Security Hub Findings - Custom Action",
                "Detail": json.dumps({"actionName": "CollectEvidence", "findings": [{"Id": "f-1"}]})}
ENVELOPE = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


def get(endpoint: str, name: str) -> dict:
    with urllib.request.urlopen(f"{endpoint}/_forensnap/{name}", timeout=30) as response:
        return json.loads(response.read())


class IntakeWorldTest(WorldTestCase):
    """forensic-account.yaml with the security account as event source, member-role.yaml in the
    member accounts, policies on."""

    @classmethod
    def setUpClass(cls):
        cls.start_world()
        try:
            cls.forensic = t.deploy(t.FORENSIC_TEMPLATE, cls.endpoint, REGION, FORENSIC,
                                    {"MemberAccountIds": MEMBERS, "EvidenceRetentionDays": "1",
                                     "EventSourceAccountIds": [SECURITY]},
                                    stack_name="forensnap-forensic")
            out = cls.forensic.outputs
            cls.queue, cls.dlq = out["RequestQueueUrl"], out["RequestDeadLetterQueueUrl"]
            cls.table, cls.bus = out["CaseTableName"], out["IntakeEventBusArn"]
            members = t.deploy_member_stack_set(cls.endpoint, REGION, MEMBERS[:1], {
                "ForensicCollectorRoleArn": out["CollectorRoleArn"], "ExternalId": EXTERNAL_ID,
                "ForensicEbsKeyArn": out["EbsKeyArn"]})
            cls.member_role = members[MEMBERS[0]].outputs["RoleArn"]
            cls.collector = cls.role_session(FORENSIC, "forensnap-collector", "i-collector")
            cls.admin = cls.user(FORENSIC, "world-admin")
            cls.security_admin = cls.user(SECURITY, "security-admin")
            cls.member_admin = cls.user(MEMBERS[0], "member-admin")
            cls.outsider_admin = cls.user(OUTSIDER, "outsider-admin")
            # Another queue and table of the forensic account, not forensnap's.
            sqs, ddb = cls.admin.client("sqs"), cls.admin.client("dynamodb")
            cls.other_queue = sqs.create_queue(QueueName="someone-elses-queue")["QueueUrl"]
            ddb.create_table(TableName="someone-elses-table", BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
            control(cls.endpoint, "settings", {"policies": True})
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        self.drain(self.queue)
        self.drain(self.dlq)
        self.clear_faults()
        authz.reset()

    def clear_faults(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/_forensnap/faults", method="DELETE"),
                               timeout=30).read()

    def drain(self, url: str) -> None:
        sqs = self.admin.client("sqs")
        for _ in range(20):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                           VisibilityTimeout=30).get("Messages", [])
            if not messages:
                return
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def receive(self, who=None, url=None, wait=1, keep=False) -> list[dict]:
        """What one ReceiveMessage answers; deleted at once (by the administrator) unless
        ``keep``, so that no test leaves invisible messages behind for the next."""
        sqs = (who or self.collector).client("sqs")
        messages = sqs.receive_message(QueueUrl=url or self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                       AttributeNames=["All"]).get("Messages", [])
        if not keep:
            for message in messages:
                self.admin.client("sqs").delete_message(QueueUrl=url or self.queue,
                                                        ReceiptHandle=message["ReceiptHandle"])
        return messages

    def decisions(self, allowed: bool | None = None) -> list[tuple[str, str, str]]:
        return [(d["principal"].split("/")[-2] if "assumed-role" in d["principal"] else d["principal"],
                 d["action"], d["resource"]) for d in authz.log_snapshot()
                if allowed is None or d["allowed"] == allowed]

    # --- the collector on its queue and table ------------------------------------------------

    def test_the_collector_makes_every_queue_call_it_is_granted(self):
        sqs = self.collector.client("sqs")
        sqs.send_message(QueueUrl=self.queue, MessageBody="request")
        message, = self.receive(keep=True)
        sqs.change_message_visibility(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=600)
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["All"])["Attributes"]
        self.assertEqual(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"], 5)
        self.assertEqual(attributes["ApproximateNumberOfMessagesNotVisible"], "1")
        sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        # The dead-letter queue: send and read its attributes, nothing else.
        sqs.send_message(QueueUrl=self.dlq, MessageBody="poison")
        sqs.get_queue_attributes(QueueUrl=self.dlq, AttributeNames=["ApproximateNumberOfMessages"])
        for call in (lambda: sqs.receive_message(QueueUrl=self.dlq, WaitTimeSeconds=0),
                     lambda: sqs.purge_queue(QueueUrl=self.dlq)):
            self.assert_refused(call, "AccessDenied", "no statement allows")
        allowed = self.decisions(True)
        queue_arn = self.forensic.outputs["RequestQueueArn"]
        key_arn = self.forensic.outputs["EvidenceKeyArn"]
        for action in ("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility",
                       "sqs:GetQueueAttributes", "sqs:DeleteMessage"):
            self.assertIn(("forensnap-collector", action, queue_arn), allowed)
        # The queue is on the evidence key: SQS used it on the collector's behalf, via SQS.
        self.assertIn(("forensnap-collector", "kms:GenerateDataKey", key_arn), allowed)
        self.assertIn(("forensnap-collector", "kms:Decrypt", key_arn), allowed)

    def test_the_collector_is_refused_on_another_queue_and_other_queue_actions(self):
        sqs = self.collector.client("sqs")
        for what, call in (
            ("send to another queue", lambda: sqs.send_message(QueueUrl=self.other_queue, MessageBody="x")),
            ("receive from another queue", lambda: sqs.receive_message(QueueUrl=self.other_queue, WaitTimeSeconds=0)),
            ("purge its queue", lambda: sqs.purge_queue(QueueUrl=self.queue)),
            ("change its queue's policy", lambda: sqs.set_queue_attributes(
                QueueUrl=self.queue, Attributes={"Policy": ALLOW_ALL})),
            ("delete its queue", lambda: sqs.delete_queue(QueueUrl=self.queue)),
        ):
            with self.subTest(what):
                self.assert_refused(call, "AccessDenied", "no statement allows sqs:")
        # Operations the table does not model are refused the same way (their derived name on
        # resource *, which a statement naming a queue never matches).
        self.assert_refused(lambda: sqs.list_queues(), "AccessDenied", "sqs:ListQueues")
        self.assert_refused(lambda: sqs.create_queue(QueueName="forensnap-requests-2"), "AccessDenied",
                            "sqs:CreateQueue")

    def test_the_queues_refuse_plain_http_like_the_evidence_bucket(self):
        for url in (self.queue, self.dlq):
            with self.subTest(queue=url):
                message = self.assert_refused(
                    lambda: self.collector.client("sqs", "http").send_message(QueueUrl=url, MessageBody="x"),
                    "AccessDenied", "DenyInsecureTransport")
                self.assertIn("explicit deny", message)
        # The administrator too: an explicit deny binds everyone.
        self.assert_refused(lambda: self.admin.client("sqs", "http").receive_message(
            QueueUrl=self.queue, WaitTimeSeconds=0), "AccessDenied", "DenyInsecureTransport")
        self.collector.client("sqs", "tls1.2").send_message(QueueUrl=self.queue, MessageBody="over tls")
        self.assertEqual([m["Body"] for m in self.receive(self.admin)], ["over tls"])

    def test_the_collector_makes_every_table_call_it_is_granted(self):
        ddb = self.collector.client("dynamodb")
        key = {"case_id": {"S": "IR-1"}, "item": {"S": "case"}}
        ddb.put_item(TableName=self.table, Item={**key, "attempts": {"N": "0"}},
                     ConditionExpression="attribute_not_exists(case_id)")
        self.assert_refused(lambda: ddb.put_item(TableName=self.table, Item=key,
                                                 ConditionExpression="attribute_not_exists(case_id)"),
                            "ConditionalCheckFailedException")
        ddb.update_item(TableName=self.table, Key=key, UpdateExpression="SET attempts = attempts + :one",
                        ConditionExpression="attempts < :max",
                        ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": "3"}})
        self.assertEqual(ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)["Item"]["attempts"],
                         {"N": "1"})
        items = ddb.query(TableName=self.table, KeyConditionExpression="case_id = :c",
                          ExpressionAttributeValues={":c": {"S": "IR-1"}})["Items"]
        self.assertEqual(len(items), 1)
        self.assertGreaterEqual(ddb.scan(TableName=self.table)["Count"], 1)
        # A transaction needs the action of each of its items: Put and Update are granted...
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {"case_id": {"S": "IR-1"}, "item": {"S": "step#1"}}}},
            {"Update": {"TableName": self.table, "Key": key, "UpdateExpression": "SET attempts = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}}])
        # ... Delete is not.
        self.assert_refused(lambda: ddb.transact_write_items(TransactItems=[
            {"Delete": {"TableName": self.table, "Key": key}}]), "AccessDeniedException", "dynamodb:DeleteItem")
        table_arn = self.forensic.outputs["CaseTableArn"]
        allowed = self.decisions(True)
        for action in ("GetItem", "PutItem", "UpdateItem", "Query", "Scan"):
            self.assertIn(("forensnap-collector", f"dynamodb:{action}", table_arn), allowed)

    def test_the_collector_is_refused_on_another_table_and_other_table_actions(self):
        ddb = self.collector.client("dynamodb")
        key = {"case_id": {"S": "IR-2"}, "item": {"S": "case"}}
        for what, call, action in (
            ("read another table", lambda: ddb.get_item(TableName="someone-elses-table", Key={"id": {"S": "a"}}),
             "dynamodb:GetItem"),
            ("write another table", lambda: ddb.put_item(TableName="someone-elses-table", Item={"id": {"S": "a"}}),
             "dynamodb:PutItem"),
            ("delete a case", lambda: ddb.delete_item(TableName=self.table, Key=key), "dynamodb:DeleteItem"),
            ("batch write", lambda: ddb.batch_write_item(RequestItems={self.table: [{"PutRequest": {"Item": key}}]}),
             "dynamodb:BatchWriteItem"),
            ("describe its table", lambda: ddb.describe_table(TableName=self.table), "dynamodb:DescribeTable"),
            ("delete its table", lambda: ddb.delete_table(TableName=self.table), "dynamodb:DeleteTable"),
            ("list tables", lambda: ddb.list_tables(), "dynamodb:ListTables"),
        ):
            with self.subTest(what):
                self.assert_refused(call, "AccessDeniedException", action)

    # --- other accounts -------------------------------------------------------------------------

    def test_member_and_outside_principals_cannot_use_the_queue_or_table(self):
        """A member account's administrator (Allow *), its ForensnapCollector session and an
        unrelated account: neither the queue policy nor the table names them."""
        member_session = self.collector.assume(self.member_role)
        table_arn = self.forensic.outputs["CaseTableArn"]
        for who, principal in (("member administrator", self.member_admin),
                               ("member ForensnapCollector session", member_session),
                               ("outsider administrator", self.outsider_admin)):
            with self.subTest(who):
                sqs, ddb = principal.client("sqs"), principal.client("dynamodb")
                self.assert_refused(lambda: sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=0),
                                    "AccessDenied", "sqs:ReceiveMessage", "both must allow")
                self.assert_refused(lambda: sqs.send_message(QueueUrl=self.queue, MessageBody="fake request"),
                                    "AccessDenied", "sqs:SendMessage")
                self.assert_refused(lambda: ddb.get_item(TableName=table_arn, Key={
                    "case_id": {"S": "IR-1"}, "item": {"S": "case"}}), "AccessDeniedException", "dynamodb:GetItem")

    # --- the intake -----------------------------------------------------------------------------

    def test_a_guardduty_finding_from_the_security_account_becomes_a_request(self):
        events = self.security_admin.client("events")
        answer = events.put_events(Entries=[dict(GUARDDUTY, EventBusName=self.bus)])
        self.assertEqual(answer["FailedEntryCount"], 0)
        message, = self.receive(keep=True)
        event = json.loads(message["Body"])
        self.assertEqual(list(event), ENVELOPE)
        self.assertEqual((event["id"], event["source"], event["detail-type"], event["account"], event["region"]),
                         (answer["Entries"][0]["EventId"], "aws.guardduty", "GuardDuty Finding", SECURITY, REGION))
        self.assertEqual(event["detail"], json.loads(GUARDDUTY["Detail"]))
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.collector.client("sqs").delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        # EventBridge was allowed by the queue policy and the key policy, each for this rule.
        service = [d for d in authz.log_snapshot() if d["principal"] == "events.amazonaws.com"]
        self.assertEqual([(d["action"], d["allowed"]) for d in service],
                         [("sqs:SendMessage", True), ("kms:GenerateDataKey", True), ("kms:Decrypt", True)])
        self.assertIn("IntakeRulesSendRequests", service[0]["reason"])
        self.assertIn("IntakeRulesUseKeyForRequestQueue", service[1]["reason"])
        self.assertTrue(all("forensnap-guardduty-findings" in d["operation"] for d in service))

    def test_a_security_hub_custom_action_becomes_a_request_and_other_events_do_not(self):
        events = self.security_admin.client("events")
        not_instance = dict(GUARDDUTY, Detail=json.dumps({"resource": {"resourceType": "AccessKey"}}))
        other_source = dict(SECURITY_HUB, Source="aws.securityhub.other")
        imported = dict(SECURITY_HUB, DetailType="Security Hub Findings - Imported")
        answer = events.put_events(Entries=[dict(e, EventBusName=self.bus)
                                            for e in (not_instance, other_source, imported, SECURITY_HUB)])
        self.assertEqual(answer["FailedEntryCount"], 0)
        messages = self.receive()
        self.assertEqual([json.loads(m["Body"])["detail-type"] for m in messages],
                         ["Security Hub Findings - Custom Action"])

    def test_only_the_event_source_accounts_may_put_events_on_the_intake_bus(self):
        for who, principal in (("member administrator", self.member_admin),
                               ("outsider administrator", self.outsider_admin)):
            with self.subTest(who):
                self.assert_refused(lambda: principal.client("events").put_events(
                    Entries=[dict(GUARDDUTY, EventBusName=self.bus)]), "AccessDeniedException",
                    "events:PutEvents", "both must allow")
        # In the forensic account the bus policy is not needed, IAM decides: the collector has no
        # events:PutEvents (it never makes requests for itself), an administrator does.
        self.assert_refused(lambda: self.collector.client("events").put_events(
            Entries=[dict(GUARDDUTY, EventBusName=self.bus)]), "AccessDeniedException", "events:PutEvents")
        self.admin.client("events").put_events(Entries=[dict(GUARDDUTY, EventBusName="forensnap-intake")])
        self.assertEqual(len(self.receive()), 1)
        # Nothing from the refused senders reached the queue.
        self.assertEqual(self.receive(wait=0), [])

    def test_a_rule_the_queue_policy_does_not_name_cannot_deliver(self):
        """The confused deputy: a third rule on the bus, targeting the request queue, is
        EventBridge too, but not one of the two rules the queue and key policies name."""
        events = self.admin.client("events")
        events.put_rule(Name="rogue", EventBusName="forensnap-intake", EventPattern=json.dumps({"source": ["rogue"]}))
        events.put_targets(Rule="rogue", EventBusName="forensnap-intake", Targets=[
            {"Id": "q", "Arn": self.forensic.outputs["RequestQueueArn"]}])
        try:
            answer = events.put_events(Entries=[{"EventBusName": "forensnap-intake", "Source": "rogue",
                                                 "DetailType": "x", "Detail": "{}"}])
            self.assertEqual(answer["FailedEntryCount"], 0)  # PutEvents succeeds; the delivery fails
            self.assertEqual(self.receive(wait=0), [])
            failed, = get(self.endpoint, "deliveries")["failed"]
            self.assertIn("rule/forensnap-intake/rogue", failed["rule"])
            self.assertIn("sqs:SendMessage", failed["reason"])
        finally:
            events.remove_targets(Rule="rogue", EventBusName="forensnap-intake", Ids=["q"])
            events.delete_rule(Name="rogue", EventBusName="forensnap-intake")

    # --- faults ---------------------------------------------------------------------------------

    def test_a_duplicate_delivery_fault_answers_a_message_twice(self):
        sqs = self.collector.client("sqs")
        sqs.send_message(QueueUrl=self.queue, MessageBody="once")
        control(self.endpoint, "faults", {"kind": "duplicate", "service": "sqs", "operation": "ReceiveMessage",
                                          "count": 1})
        first, = self.receive(keep=True)
        second, = self.receive(keep=True)
        self.assertEqual((first["MessageId"], first["Body"]), (second["MessageId"], second["Body"]))
        self.assertNotEqual(first["ReceiptHandle"], second["ReceiptHandle"])
        self.assertEqual((first["Attributes"]["ApproximateReceiveCount"],
                          second["Attributes"]["ApproximateReceiveCount"]), ("1", "2"))
        # Either receipt handle deletes it; deleting twice is harmless, as on SQS.
        sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=first["ReceiptHandle"])
        sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=second["ReceiptHandle"])
        self.assertEqual(self.receive(wait=0), [])

    def test_throttling_and_internal_errors_of_sqs_and_dynamodb(self):
        sqs, ddb = self.collector.client("sqs"), self.collector.client("dynamodb")
        key = {"case_id": {"S": "IR-3"}, "item": {"S": "case"}}
        for rule, call, code in (
            ({"kind": "throttle", "service": "sqs", "operation": "ReceiveMessage"},
             lambda: sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=0), "ThrottlingException"),
            ({"kind": "error", "service": "sqs", "operation": "DeleteMessage", "status": 503},
             lambda: sqs.delete_message(QueueUrl=self.queue, ReceiptHandle="x"), "InternalFailure"),
            ({"kind": "throttle", "service": "dynamodb", "operation": "PutItem"},
             lambda: ddb.put_item(TableName=self.table, Item=key), "ProvisionedThroughputExceededException"),
            ({"kind": "throttle", "service": "dynamodb", "operation": "UpdateItem", "code": "ThrottlingException"},
             lambda: ddb.update_item(TableName=self.table, Key=key, UpdateExpression="SET a = :a",
                                     ExpressionAttributeValues={":a": {"S": "b"}}), "ThrottlingException"),
            ({"kind": "error", "service": "dynamodb", "operation": "GetItem"},
             lambda: ddb.get_item(TableName=self.table, Key=key), "InternalServerError"),
        ):
            with self.subTest(rule=rule):
                control(self.endpoint, "faults", rule)  # every attempt: the client may retry
                try:
                    self.assert_refused(call, code)
                finally:
                    self.clear_faults()
        with self.assertRaises(urllib.error.HTTPError):
            control(self.endpoint, "faults", {"kind": "duplicate", "service": "dynamodb"})


if __name__ == "__main__":
    import unittest

    unittest.main()
