"""The member role and the account's CloudTrail record, in a world that evaluates every policy:
with ``TrailBucketName`` set (the seed sets it for a member with ``[members.trail]``) the role
may look up events, describe the trails and their status, fetch the public keys, and list and
read the trail bucket's ``AWSLogs/`` -- enough to validate the whole trail -- and may neither
change a trail nor write to, delete from or list outside ``AWSLogs/`` of its bucket. Without
``TrailBucketName`` the template grants no access to any bucket.

Run: ``cd localworld && $PY -m unittest forensnap_world.policy.test_trail_access -v``.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import unittest

from . import templates as t
from .test_must_deny import CASE, Principal, WorldTestCase
from ..test_cloudtrail import Validator, world_now

REGION = "us-east-1"
MEMBER = "111111111111"
EXTERNAL_ID = "ext-0123456789abcdef"
BUCKET = "trail-logs-111111111111"
WORLD = f"""
region = "{REGION}"
[forensic]
account = "123456789012"
retention_days = 1
[[members]]
account = "{MEMBER}"
external_id = "{EXTERNAL_ID}"
[[members.instances]]
name = "web-1"
instance_profile = "web-1-role"
[[members.instances.volumes]]
device = "/dev/xvda"
image = "web.img"
build = {{ kind = "zeros", size_mib = 1 }}
[members.trail]
name = "org-trail"
bucket = "{BUCKET}"
history_hours = 3
[[members.trail_events]]
minutes_ago = 30
event_source = "iam.amazonaws.com"
event_name = "CreateUser"
principal = "instance-role:web-1"
request_parameters = {{ userName = "backup-svc" }}
"""


class TrailAccessTest(WorldTestCase):
    """A seeded world with policies (forensic-account.yaml, member-role.yaml with the trail's
    bucket), the member role assumed as forensnap assumes it."""

    @classmethod
    def setUpClass(cls):
        from ..seed import seed

        cls.start_world()
        cls.folder = tempfile.mkdtemp(prefix="forensnap-trail-access-")
        try:
            path = os.path.join(cls.folder, "world.toml")
            with open(path, "w") as handle:
                handle.write(WORLD)
            cls.world = seed(path, cls.endpoint)
            member = cls.world["members"][0]
            forensic = cls.world["forensic"]
            cls.trail = member["trail"]
            collector = Principal(cls.endpoint, forensic["access_key_id"], forensic["secret_access_key"])
            cls.role = collector.assume(member["role_arn"], external_id=EXTERNAL_ID)
            cls.admin = Principal(cls.endpoint, member["admin_access_key_id"], member["admin_secret_access_key"])
            with open(cls.world["stacks"]["members"][0]) as handle:
                cls.stack = json.load(handle)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.folder, ignore_errors=True)

    def test_the_member_role_reads_the_record_and_validates_the_trail(self):
        cloudtrail, s3 = self.role.client("cloudtrail"), self.role.client("s3")
        events = cloudtrail.lookup_events(LookupAttributes=[{"AttributeKey": "EventName",
                                                             "AttributeValue": "CreateUser"}])["Events"]
        self.assertEqual([e["Username"] for e in events], [self.world["members"][0]["instances"][0]["instance_id"]])
        trails = cloudtrail.describe_trails()["trailList"]
        self.assertEqual([(t_["Name"], t_["S3BucketName"]) for t_ in trails], [("org-trail", BUCKET)])
        status = cloudtrail.get_trail_status(Name=self.trail["arn"])
        self.assertTrue(status["IsLogging"])
        self.assertIn("LatestDigestDeliveryTime", status)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"AWSLogs/{MEMBER}/CloudTrail-Digest/")["Contents"]
        self.assertEqual(len(listed), self.trail["digest_files"])
        end = world_now(self.endpoint) + datetime.timedelta(hours=1)
        report = Validator(s3, cloudtrail, BUCKET, "", MEMBER, REGION, "org-trail", REGION).run(
            end - datetime.timedelta(days=1), end)
        self.assertEqual(report.problems, [])
        self.assertEqual((len(report.valid_digests), len(report.valid_logs)),
                         (self.trail["digest_files"], self.trail["log_files"]))

    def test_the_member_role_changes_neither_the_trail_nor_its_bucket(self):
        cloudtrail, s3 = self.role.client("cloudtrail"), self.role.client("s3")
        self.assert_refused(lambda: cloudtrail.stop_logging(Name="org-trail"), "AccessDeniedException",
                            "cloudtrail:StopLogging", "DenyChangingTrails")
        self.assert_refused(lambda: cloudtrail.delete_trail(Name="org-trail"), "AccessDeniedException",
                            "cloudtrail:DeleteTrail")
        key = s3.list_objects_v2(Bucket=BUCKET, Prefix="AWSLogs/")["Contents"][0]["Key"]
        self.assert_refused(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}"), "AccessDenied",
                            "s3:PutObject", "DenyChangingTrailBucket")
        self.assert_refused(lambda: s3.delete_object(Bucket=BUCKET, Key=key), "AccessDenied", "s3:DeleteObject")
        self.assert_refused(lambda: s3.put_bucket_policy(Bucket=BUCKET, Policy="{}"), "AccessDenied",
                            "s3:PutBucketPolicy")
        # Read only under AWSLogs/: no listing of the whole bucket, no other object.
        self.assert_refused(lambda: s3.list_objects_v2(Bucket=BUCKET), "AccessDenied", "s3:ListBucket")
        self.admin.client("s3").put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"not a log")
        self.assert_refused(lambda: s3.get_object(Bucket=BUCKET, Key="notes/readme.txt"), "AccessDenied",
                            "s3:GetObject")
        self.assert_refused(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="notes/"), "AccessDenied")

    def test_the_member_roles_own_calls_carry_the_case_in_the_record(self):
        self.role.client("ec2").describe_instances()
        session = self.role.arn.split("/")[-1]
        events = self.admin.client("cloudtrail").lookup_events(
            LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": session}])["Events"]
        described = [json.loads(e["CloudTrailEvent"]) for e in events if e["EventName"] == "DescribeInstances"]
        self.assertTrue(described)
        context = described[0]["userIdentity"]["sessionContext"]
        self.assertEqual(context["sourceIdentity"], CASE)
        self.assertEqual(context["sessionIssuer"]["arn"], self.world["members"][0]["role_arn"])

    def test_the_stack_names_the_trail_bucket(self):
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in self.stack["Stacks"][0]["Parameters"]}
        self.assertEqual(parameters["TrailBucketName"], BUCKET)
        self.assertNotIn("TrailKeyPrefix", parameters)


class MemberTemplateTrailTest(unittest.TestCase):
    """member-role.yaml resolved with and without a trail bucket (and with a key prefix)."""

    BASE = {"ForensicCollectorRoleArn": "arn:aws:iam::123456789012:role/forensnap-collector",
            "ExternalId": EXTERNAL_ID,
            "ForensicEbsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"}

    def statements(self, **parameters) -> dict:
        template = t.load_template(t.MEMBER_TEMPLATE)
        params = {**self.BASE, **parameters}
        physical = t.physical_ids(template, params, MEMBER, REGION)
        role = t.resolve(template, params, MEMBER, REGION, physical)["CollectorRole"]["Properties"]
        return {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}

    def test_no_bucket_statement_without_a_trail_bucket(self):
        statements = self.statements()
        self.assertEqual(statements["TrailEvents"]["Action"],
                         ["cloudtrail:LookupEvents", "cloudtrail:DescribeTrails", "cloudtrail:ListPublicKeys"])
        self.assertEqual(statements["TrailStatus"]["Resource"], f"arn:aws:cloudtrail:*:{MEMBER}:trail/*")
        for sid in ("ListTrailLogs", "ReadTrailLogs", "DenyChangingTrailBucket"):
            self.assertNotIn(sid, statements)
        self.assertIn("cloudtrail:StopLogging", statements["DenyChangingTrails"]["Action"])
        every = [a for s in statements.values() if s["Effect"] == "Allow"
                 for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
        self.assertFalse([a for a in every if a.startswith("s3:")], "no S3 access at all")

    def test_the_trail_bucket_read_only_under_awslogs(self):
        statements = self.statements(TrailBucketName=BUCKET)
        self.assertEqual(statements["ListTrailLogs"]["Resource"], f"arn:aws:s3:::{BUCKET}")
        self.assertEqual(statements["ListTrailLogs"]["Condition"], {"StringLike": {"s3:prefix": "AWSLogs/*"}})
        self.assertEqual(statements["ReadTrailLogs"], {"Sid": "ReadTrailLogs", "Effect": "Allow",
                                                       "Action": "s3:GetObject",
                                                       "Resource": f"arn:aws:s3:::{BUCKET}/AWSLogs/*"})
        self.assertEqual(statements["DenyChangingTrailBucket"]["Resource"],
                         [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"])
        prefixed = self.statements(TrailBucketName=BUCKET, TrailKeyPrefix="org/ct")
        self.assertEqual(prefixed["ListTrailLogs"]["Condition"], {"StringLike": {"s3:prefix": "org/ct/AWSLogs/*"}})
        self.assertEqual(prefixed["ReadTrailLogs"]["Resource"], f"arn:aws:s3:::{BUCKET}/org/ct/AWSLogs/*")

    def test_parameters_are_checked(self):
        for wrong in ({"TrailBucketName": "Not_A_Bucket"}, {"TrailKeyPrefix": "/leading"},
                      {"TrailKeyPrefix": "trailing/"}):
            with self.subTest(parameters=wrong), self.assertRaises(t.TemplateError):
                self.statements(**wrong)


if __name__ == "__main__":
    unittest.main()
