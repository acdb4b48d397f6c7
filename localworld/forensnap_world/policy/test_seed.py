"""Seeding worlds outside us-east-1, both kinds (templates with policies, hand-made without): the
world JSON and the generated config name the daemon's queue, dead-letter queue, case table and
intake bus, and a finding put on the bus by the security tooling account arrives in the queue.

Run: ``cd localworld && $PY -m unittest forensnap_world.policy.test_seed -v``. Each class seeds
its own in-process world on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import tomllib
import unittest
import urllib.request

import boto3
from botocore.config import Config

REGION = "eu-west-1"
WORLD = """
region = "eu-west-1"
policies = {policies}
[forensic]
account = "123456789012"
retention_days = 1
queue_visibility_timeout_seconds = 30
{extra}
[security]
account = "555555555555"
[[members]]
account = "111111111111"
external_id = "ext-0123456789abcdef"
[[members.instances]]
name = "web"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "web.img"
encryption = "default"
build = {{ kind = "pattern", blocks = 2 }}
"""
FINDING = {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding",
           "Detail": json.dumps({"resource": {"resourceType": "Instance",
                                              "instanceDetails": {"instanceId": "i-0123456789abcdef0"}}})}


class SeedInAnotherRegion:
    """Mixin: seeds ``WORLD`` with ``POLICIES`` into a fresh world."""

    POLICIES = True
    EXTRA = ""

    @classmethod
    def setUpClass(cls):
        from ..seed import seed
        from ..server import make_world_server

        cls.server = make_world_server("127.0.0.1", 0)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.endpoint = f"http://127.0.0.1:{cls.server.server_port}"
        cls.folder = tempfile.mkdtemp(prefix="forensnap-seed-test-")
        try:
            path = os.path.join(cls.folder, "world.toml")
            with open(path, "w") as handle:
                handle.write(WORLD.format(policies=str(cls.POLICIES).lower(), extra=cls.EXTRA))
            cls.world = seed(path, cls.endpoint)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{cls.endpoint}/_forensnap/reset", method="POST"),
                                   timeout=30).read()
        finally:
            cls.server.shutdown()
            cls.server.server_close()
            cls.thread.join(timeout=10)
            shutil.rmtree(cls.folder, ignore_errors=True)

    def client(self, service: str, key: str, secret: str):
        session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint,
                              config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def operator(self, service: str):
        f = self.world["forensic"]
        return self.client(service, f["access_key_id"], f["secret_access_key"])

    def test_the_world_names_the_daemons_resources(self):
        f = self.world["forensic"]
        account = f["account"]
        self.assertEqual(f["request_queue_url"], f"{self.endpoint}/{account}/forensnap-requests")
        self.assertEqual(f["dead_letter_queue_url"], f"{self.endpoint}/{account}/forensnap-requests-dlq")
        self.assertEqual(f["case_table"], "forensnap-cases")
        self.assertEqual(f["intake_bus"], f"arn:aws:events:{REGION}:{account}:event-bus/forensnap-intake")
        self.assertEqual(f["intake_bus_name"], "forensnap-intake")
        self.assertEqual(self.world["security"]["account"], "555555555555")
        self.assertTrue(self.world["security"]["admin_access_key_id"])
        with open(self.world["config"], "rb") as handle:
            config = tomllib.load(handle)
        self.assertEqual(config["daemon"], {"queue_url": f["request_queue_url"],
                                            "dead_letter_queue_url": f["dead_letter_queue_url"],
                                            "case_table": "forensnap-cases"})
        self.assertEqual(config["forensic"]["region"], REGION)

    def test_the_queue_table_and_bucket_live_in_the_region(self):
        f = self.world["forensic"]
        sqs = self.operator("sqs")
        attributes = sqs.get_queue_attributes(QueueUrl=f["request_queue_url"], AttributeNames=["All"])["Attributes"]
        self.assertEqual(attributes["QueueArn"], f"arn:aws:sqs:{REGION}:{f['account']}:forensnap-requests")
        self.assertEqual(attributes["VisibilityTimeout"], "30")
        self.assertEqual(json.loads(attributes["RedrivePolicy"]), {
            "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{f['account']}:forensnap-requests-dlq", "maxReceiveCount": 5})
        ddb = self.operator("dynamodb")
        ddb.put_item(TableName=f["case_table"], Item={"case_id": {"S": "IR-1"}, "item": {"S": "case"}})
        self.assertEqual(ddb.get_item(TableName=f["case_table"], Key={"case_id": {"S": "IR-1"}, "item": {"S": "case"}},
                                      ConsistentRead=True)["Item"]["case_id"], {"S": "IR-1"})
        admin = self.client("s3", f["admin_access_key_id"], f["admin_secret_access_key"])
        location = admin.get_bucket_location(Bucket=f["evidence_bucket"])["LocationConstraint"]
        self.assertEqual(location, REGION)
        volume = self.world["members"][0]["instances"][0]["volumes"][0]
        ec2 = self.client("ec2", self.world["members"][0]["admin_access_key_id"],
                          self.world["members"][0]["admin_secret_access_key"])
        self.assertTrue(ec2.describe_volumes(VolumeIds=[volume["volume_id"]])["Volumes"][0]
                        ["AvailabilityZone"].startswith(REGION))

    def test_a_finding_from_the_security_account_reaches_the_queue(self):
        f, security = self.world["forensic"], self.world["security"]
        events = self.client("events", security["admin_access_key_id"], security["admin_secret_access_key"])
        self.assertEqual(events.put_events(Entries=[dict(FINDING, EventBusName=f["intake_bus"])])["FailedEntryCount"], 0)
        sqs = self.operator("sqs")
        messages = sqs.receive_message(QueueUrl=f["request_queue_url"], WaitTimeSeconds=2).get("Messages", [])
        self.assertEqual(len(messages), 1)
        event = json.loads(messages[0]["Body"])
        self.assertEqual((event["account"], event["region"], event["source"]), ("555555555555", REGION, "aws.guardduty"))
        sqs.delete_message(QueueUrl=f["request_queue_url"], ReceiptHandle=messages[0]["ReceiptHandle"])


class PoliciesWorldInEuWest1Test(SeedInAnotherRegion, unittest.TestCase):
    POLICIES = True


class HandMadeWorldInEuWest1Test(SeedInAnotherRegion, unittest.TestCase):
    POLICIES = False
    EXTRA = 'evidence_bucket = "hand-made-evidence-eu-west-1"'

    def test_the_bus_policy_names_the_event_sources(self):
        f = self.world["forensic"]
        admin = self.client("events", f["admin_access_key_id"], f["admin_secret_access_key"])
        policy = json.loads(admin.describe_event_bus(Name=f["intake_bus_name"])["Policy"])
        self.assertEqual(policy["Statement"][0]["Principal"], {"AWS": ["555555555555"]})
        rules = {r["Name"]: json.loads(r["EventPattern"]) for r in admin.list_rules(EventBusName=f["intake_bus_name"])["Rules"]}
        self.assertEqual(set(rules), {"forensnap-guardduty-findings", "forensnap-securityhub-custom-action"})
        self.assertEqual(rules["forensnap-guardduty-findings"]["detail"], {"resource": {"resourceType": ["Instance"]}})


if __name__ == "__main__":
    unittest.main()
