"""Must-deny cases of issue 13 that the templates' own policies decide, in a world that evaluates
them: plain HTTP and old TLS (the transport is an input of every decision), AssumeRole of a member
role by anyone but the forensic collector role (another account, other principals of the forensic
account, another member account), and the member role deployed as a StackSet into several
accounts with identical parameters.

Run: ``cd localworld && $PY -m unittest forensnap_world.policy.test_must_deny -v``. The world runs
in-process on a free loopback port; ``StackSetWorldTest`` deploys ``forensic-account.yaml`` and
``member-role.yaml`` (three member accounts) and switches policy evaluation on.
"""

from __future__ import annotations

import json
import re
import threading
import unittest
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import authorize as authz
from . import templates as t
from .templates import TemplateError

REGION = "us-east-1"
FORENSIC = "123456789012"
MEMBERS = ["111111111111", "222222222222", "333333333333"]
OUTSIDER = "444444444444"
"""An account that is neither the forensic account nor a member: an unrelated third party."""
EXTERNAL_ID = "forensnap-stackset-external-0001"
CASE = "IR-2042"
ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def control(endpoint: str, name: str, payload: dict) -> dict:
    """POST to the world's control API."""
    request = urllib.request.Request(f"{endpoint}/_forensnap/{name}", data=json.dumps(payload).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Principal:
    """Credentials of one caller of the world, and boto3 clients signed with them."""

    def __init__(self, endpoint: str, access_key: str, secret: str, token: str | None = None,
                 arn: str = ""):
        self.endpoint, self.arn = endpoint, arn
        self.session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret,
                                             aws_session_token=token, region_name=REGION)

    def client(self, service: str, transport: str | None = None):
        """A client of ``service``; with ``transport`` every request carries
        ``x-forensnap-transport: <transport>`` (``http``, ``tls1.1``, ...)."""
        config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
        client = self.session.client(service, endpoint_url=self.endpoint, config=config)
        if transport is not None:
            client.meta.events.register(
                "before-sign.*.*",
                lambda request, **_: request.headers.__setitem__("x-forensnap-transport", transport))
        return client

    def assume(self, role_arn: str, external_id: str | None = EXTERNAL_ID,
               source_identity: str | None = CASE) -> "Principal":
        args = {"RoleArn": role_arn, "RoleSessionName": f"forensnap-{CASE}"}
        if external_id is not None:
            args["ExternalId"] = external_id
        if source_identity is not None:
            args["SourceIdentity"] = source_identity
        answer = self.client("sts").assume_role(**args)
        creds = answer["Credentials"]
        return Principal(self.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"],
                         creds["SessionToken"], answer["AssumedRoleUser"]["Arn"])


class WorldTestCase(unittest.TestCase):
    """An in-process world, reset when the class is done."""

    @classmethod
    def start_world(cls) -> None:
        from ..server import make_world_server

        cls.server = make_world_server("127.0.0.1", 0)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.endpoint = f"http://127.0.0.1:{cls.server.server_port}"

    @classmethod
    def tearDownClass(cls):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{cls.endpoint}/_forensnap/reset", method="POST"),
                                   timeout=30).read()
        finally:
            cls.server.shutdown()
            cls.server.server_close()
            cls.thread.join(timeout=10)

    @classmethod
    def user(cls, account: str, name: str, policy: str | None = ALLOW_ALL) -> Principal:
        """An IAM user of ``account`` (with ``policy`` as its inline policy) and its access key."""
        iam = t.world_clients(cls.endpoint, REGION, account)("iam")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=policy)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Principal(cls.endpoint, key["AccessKeyId"], key["SecretAccessKey"], arn=arn)

    @classmethod
    def role_session(cls, account: str, role_name: str, session: str) -> Principal:
        """A session of ``role_name`` in ``account``, as an instance profile hands one out (the
        world's ``/_forensnap/instance-profile``): the key of a fresh IAM user of the account,
        mapped to the role session."""
        principal = cls.user(account, f"key-for-{role_name}-{session}"[:64], policy=None)
        key_id = principal.session.get_credentials().access_key
        principal.arn = control(cls.endpoint, "instance-profile", {
            "access_key_id": key_id, "account": account, "role_name": role_name, "session": session,
        })["principal"]
        return principal

    @classmethod
    def root(cls, account: str) -> Principal:
        """The account's root user: the world's own clients act as it (their key names no user)."""
        principal = Principal(cls.endpoint, "seed", "seed", arn=f"arn:aws:iam::{account}:root")
        original = principal.client

        def client(service: str, transport: str | None = None):
            made = original(service, transport)
            made.meta.events.register(
                "before-sign.*.*",
                lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
            return made

        principal.client = client
        return principal

    def assert_refused(self, call, code: str, *needles: str) -> str:
        """``call()`` fails with ``code``; its message contains every needle. Returns the message."""
        with self.assertRaises(ClientError) as caught:
            call()
        error = caught.exception.response["Error"]
        self.assertEqual(error.get("Code"), code, error)
        message = error.get("Message", "")
        for needle in needles:
            self.assertIn(needle, message)
        return message


class StackSetWorldTest(WorldTestCase):
    """The forensic account from its template; the member role as one StackSet across three
    member accounts (same template, same parameters); policies evaluated on every request."""

    @classmethod
    def setUpClass(cls):
        cls.start_world()
        try:
            cls.forensic = t.deploy(t.FORENSIC_TEMPLATE, cls.endpoint, REGION, FORENSIC,
                                    {"MemberAccountIds": MEMBERS, "EvidenceRetentionDays": "1"},
                                    stack_name="forensnap-forensic")
            cls.bucket = cls.forensic.outputs["EvidenceBucketName"]
            cls.collector_role_arn = cls.forensic.outputs["CollectorRoleArn"]
            cls.member_params = {"ForensicCollectorRoleArn": cls.collector_role_arn,
                                 "ExternalId": EXTERNAL_ID,
                                 "ForensicEbsKeyArn": cls.forensic.outputs["EbsKeyArn"]}
            cls.members = t.deploy_member_stack_set(cls.endpoint, REGION, MEMBERS, cls.member_params)
            cls.role_arns = {account: d.outputs["RoleArn"] for account, d in cls.members.items()}

            # The collector as forensnap runs it (the collector role's instance-profile session).
            cls.collector = cls.role_session(FORENSIC, "forensnap-collector", "i-collector")
            # Everyone else, each with every permission its own account can give.
            cls.forensic_admin = cls.user(FORENSIC, "world-admin")
            iam = t.world_clients(cls.endpoint, REGION, FORENSIC)("iam")
            trust_account = json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{FORENSIC}:root"},
                "Action": "sts:AssumeRole"}]})
            iam.create_role(RoleName="incident-responder", AssumeRolePolicyDocument=trust_account)
            iam.put_role_policy(RoleName="incident-responder", PolicyName="inline", PolicyDocument=ALLOW_ALL)
            cls.forensic_other_role = cls.role_session(FORENSIC, "incident-responder", "responder")
            cls.outsider_admin = cls.user(OUTSIDER, "outsider-admin")
            # The confused deputy by name: a role called like the collector, in another account.
            outsider_iam = t.world_clients(cls.endpoint, REGION, OUTSIDER)("iam")
            outsider_iam.create_role(RoleName="forensnap-collector", AssumeRolePolicyDocument=trust_account)
            outsider_iam.put_role_policy(RoleName="forensnap-collector", PolicyName="inline",
                                         PolicyDocument=ALLOW_ALL)
            cls.outsider_collector = cls.role_session(OUTSIDER, "forensnap-collector", "i-outsider")
            cls.member_admins = {account: cls.user(account, "member-admin") for account in MEMBERS}

            control(cls.endpoint, "settings", {"policies": True})
        except BaseException:
            cls.tearDownClass()
            raise

    # --- plain HTTP and old TLS ----------------------------------------------------------------

    def test_evidence_put_over_plain_http_is_refused_by_deny_insecure_transport(self):
        key = "cases/IR-2042/transport/put.txt"
        authz.reset()
        message = self.assert_refused(
            lambda: self.collector.client("s3", "http").put_object(Bucket=self.bucket, Key=key, Body=b"x"),
            "AccessDenied", "DenyInsecureTransport")
        self.assertIn("explicit deny", message)
        refused = [d for d in authz.log_snapshot() if not d["allowed"]]
        self.assertEqual([(d["action"], d["resource"]) for d in refused],
                         [("s3:PutObject", f"arn:aws:s3:::{self.bucket}/{key}")])
        self.assertIn("DenyInsecureTransport", refused[0]["reason"])
        # The same request over TLS, implicit (the world's default) or named, is allowed.
        for transport in (None, "https", "tls1.3", "tls1.2"):
            with self.subTest(transport=transport):
                put = self.collector.client("s3", transport).put_object(Bucket=self.bucket, Key=key, Body=b"x")
                self.assertTrue(put["VersionId"])

    def test_evidence_get_over_plain_http_is_refused_by_deny_insecure_transport(self):
        key = "cases/IR-2042/transport/get.txt"
        self.collector.client("s3").put_object(Bucket=self.bucket, Key=key, Body=b"evidence")
        authz.reset()
        self.assert_refused(
            lambda: self.collector.client("s3", "http").get_object(Bucket=self.bucket, Key=key),
            "AccessDenied", "DenyInsecureTransport")
        got = self.collector.client("s3", "https").get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(got["Body"].read(), b"evidence")
        # Listing the bucket is refused the same way: the statement names the bucket too.
        self.assert_refused(
            lambda: self.collector.client("s3", "http").list_objects_v2(Bucket=self.bucket, Prefix="cases/"),
            "AccessDenied", "DenyInsecureTransport")
        refused = [(d["action"], d["resource"]) for d in authz.log_snapshot() if not d["allowed"]]
        self.assertEqual(refused, [("s3:GetObject", f"arn:aws:s3:::{self.bucket}/{key}"),
                                   ("s3:ListBucket", f"arn:aws:s3:::{self.bucket}")])
        # Over TLS the same reads were allowed, the KMS decrypt of the evidence key included.
        allowed = {d["action"] for d in authz.log_snapshot() if d["allowed"]}
        self.assertTrue({"s3:GetObject", "kms:Decrypt"} <= allowed, allowed)

    def test_tls_older_than_1_2_is_refused_by_deny_tls_older_than_12(self):
        key = "cases/IR-2042/transport/tls.txt"
        for transport in ("tls1.1", "tls1.0"):
            with self.subTest(transport=transport):
                self.assert_refused(
                    lambda: self.collector.client("s3", transport).put_object(
                        Bucket=self.bucket, Key=key, Body=b"x"),
                    "AccessDenied", "DenyTlsOlderThan12")
        self.collector.client("s3", "tls1.2").put_object(Bucket=self.bucket, Key=key, Body=b"x")

    def test_an_unknown_transport_is_refused_not_read_as_tls(self):
        self.assert_refused(
            lambda: self.collector.client("s3", "ssl3").put_object(
                Bucket=self.bucket, Key="cases/IR-2042/transport/ssl3.txt", Body=b"x"),
            "InvalidArgument", "x-forensnap-transport")

    def test_plain_http_is_in_the_context_of_other_services_too(self):
        """``aws:SecureTransport`` is a global key: the signing key's policy does not name it, so
        kms:Sign over plain HTTP is allowed, and the decision is still logged as that request's."""
        key_arn = self.forensic.outputs["SigningKeyArn"]
        signed = self.collector.client("kms", "http").sign(
            KeyId=key_arn, Message=b"\0" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
        self.assertTrue(signed["Signature"])

    # --- the transfer bucket (memory capture's plans) -----------------------------------------

    def test_only_the_collector_role_writes_or_reads_transfer_plans_and_deletes_them(self):
        bucket = self.forensic.outputs["TransferBucketName"]
        key = "memory/0123456789abcdef0123456789abcdef.json"
        plan = b'{"schema": "forensnap.memory-plan/v1", "part_bytes": 5242880, "parts": []}'
        self.collector.client("s3").put_object(Bucket=bucket, Key=key, Body=plan)
        self.assertEqual(self.collector.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read(), plan)
        # Every other principal of the account, allowed everything by its own policy, is refused.
        for other in (self.forensic_admin, self.forensic_other_role):
            with self.subTest(principal=other.arn):
                self.assert_refused(lambda: other.client("s3").get_object(Bucket=bucket, Key=key),
                                    "AccessDenied", "DenyObjectAccessExceptCollectorRole")
                self.assert_refused(lambda: other.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x"),
                                    "AccessDenied", "DenyObjectAccessExceptCollectorRole")
        self.assert_refused(lambda: self.outsider_admin.client("s3").get_object(Bucket=bucket, Key=key),
                            "AccessDenied", "")
        # Plain HTTP is refused even to the collector.
        self.assert_refused(lambda: self.collector.client("s3", "http").get_object(Bucket=bucket, Key=key),
                            "AccessDenied", "DenyInsecureTransport")
        # Unlike evidence, a plan is deleted for good (no versions are kept).
        self.collector.client("s3").delete_object(Bucket=bucket, Key=key)
        listed = self.forensic_admin.client("s3").list_object_versions(Bucket=bucket)
        self.assertEqual(listed.get("Versions", []) + listed.get("DeleteMarkers", []), [])

    # --- AssumeRole of a member role ----------------------------------------------------------

    def test_the_collector_role_assumes_every_member_role_with_the_external_id(self):
        for account, role_arn in self.role_arns.items():
            with self.subTest(account=account):
                member = self.collector.assume(role_arn)
                self.assertEqual(member.arn, f"arn:aws:sts::{account}:assumed-role/ForensnapCollector/forensnap-{CASE}")
                identity = member.client("sts").get_caller_identity()
                self.assertEqual(identity["Account"], account)
                # The session acts in its own account, with the role's permissions.
                self.assertIn("Reservations", member.client("ec2").describe_instances())

    def test_the_collector_role_needs_the_external_id_and_a_source_identity(self):
        for account, role_arn in self.role_arns.items():
            for what, external_id, source in (("no ExternalId", None, CASE),
                                              ("a wrong ExternalId", "forensnap-stackset-external-0002", CASE),
                                              ("no SourceIdentity", EXTERNAL_ID, None)):
                with self.subTest(what, account=account):
                    self.assert_refused(lambda: self.collector.assume(role_arn, external_id, source),
                                        "AccessDenied", "no statement allows sts:AssumeRole")

    def test_a_third_account_cannot_assume_a_member_role_even_with_the_external_id(self):
        """An unrelated account knows the ExternalId and the case: its administrator, its root
        and its own role named ``forensnap-collector`` are all refused by the trust policy, which
        names the forensic account's collector role ARN (a role ARN includes its account)."""
        callers = {"administrator (Allow *)": self.outsider_admin,
                   "role named forensnap-collector": self.outsider_collector,
                   "root user": self.root(OUTSIDER)}
        for account, role_arn in self.role_arns.items():
            for who, caller in callers.items():
                with self.subTest(account=account, caller=who):
                    self.assert_refused(lambda: caller.assume(role_arn), "AccessDenied",
                                        "no statement allows sts:AssumeRole", role_arn)

    def test_no_other_principal_of_the_forensic_account_can_assume_a_member_role(self):
        callers = {"administrator user (Allow *)": self.forensic_admin,
                   "another role (Allow *)": self.forensic_other_role,
                   "root user": self.root(FORENSIC)}
        for account, role_arn in self.role_arns.items():
            for who, caller in callers.items():
                with self.subTest(account=account, caller=who):
                    self.assert_refused(lambda: caller.assume(role_arn), "AccessDenied",
                                        "no statement allows sts:AssumeRole")

    def test_a_member_account_cannot_assume_its_own_or_another_members_role(self):
        for account in MEMBERS:
            own_session = self.collector.assume(self.role_arns[account])
            callers = {"administrator (Allow *)": self.member_admins[account],
                       "root user": self.root(account),
                       "its ForensnapCollector session": own_session}
            for target in MEMBERS:
                for who, caller in callers.items():
                    with self.subTest(caller=f"{account} {who}", target=target):
                        self.assert_refused(lambda: caller.assume(self.role_arns[target]), "AccessDenied",
                                            "no statement allows sts:AssumeRole")

    # --- the StackSet ------------------------------------------------------------------------

    def test_stack_instances_are_the_same_role_in_each_account(self):
        template = t.load_template(t.MEMBER_TEMPLATE)
        first = MEMBERS[0]
        for account, deployment in self.members.items():
            with self.subTest(account=account):
                self.assertEqual(deployment.outputs, {
                    "RoleArn": f"arn:aws:iam::{account}:role/ForensnapCollector",
                    "RoleName": "ForensnapCollector", "AccountId": account})
                self.assertEqual(deployment.skipped, {})
                self.assertEqual(deployment.ignored, {
                    "MemoryCaptureDocument": ["UpdateMethod: applies only to stack updates, nothing to create"]})
                iam = t.world_clients(self.endpoint, REGION, account)("iam")
                role = iam.get_role(RoleName="ForensnapCollector")["Role"]
                # The trust policy is identical everywhere: it names only the forensic account.
                self.assertEqual(role["AssumeRolePolicyDocument"],
                                 self.members[first].resources["CollectorRole"]["Properties"]["AssumeRolePolicyDocument"])
                stored = iam.get_role_policy(RoleName="ForensnapCollector", PolicyName="forensnap-collect")
                expected = t.resolve(template, self.member_params, account, REGION,
                                     self.members[account].physical)["CollectorRole"]["Properties"]
                self.assertEqual(stored["PolicyDocument"], expected["Policies"][0]["PolicyDocument"])
                # Every account-scoped ARN of the permissions names this account.
                text = json.dumps(stored["PolicyDocument"])
                self.assertEqual(set(re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9*-]*:(\d{12})", text)),
                                 {account, FORENSIC})

    def test_the_forensic_ebs_key_lets_every_stack_instance_in(self):
        """The forensic template's MemberAccountIds and the StackSet's accounts agree: the EBS key
        policy names each member account, and nothing else outside the forensic account."""
        kms = t.world_clients(self.endpoint, REGION, FORENSIC)("kms")
        policy = json.loads(kms.get_key_policy(KeyId=self.forensic.outputs["EbsKeyArn"],
                                               PolicyName="default")["Policy"])
        named = {a for s in policy["Statement"]
                 for a in ([s["Principal"]["AWS"]] if isinstance(s["Principal"].get("AWS"), str)
                           else s["Principal"].get("AWS", []))}
        accounts = {a if re.fullmatch(r"\d{12}", a) else a.split(":")[4] for a in named}
        self.assertEqual(accounts, {FORENSIC, *MEMBERS})


class PoliciesOffTrustTest(WorldTestCase):
    """A world with ``policies = false`` still checks the trust policy of an AssumeRole, alone
    (identity policies are evaluated nowhere in such a world), with the same evaluator as a world
    with policies (``authorize.trust_decision``), so a trust policy means the same in both."""

    @classmethod
    def setUpClass(cls):
        from ..seed import _trust_policy

        cls.start_world()
        try:
            forensic = t.deploy_forensic(cls.endpoint, REGION, FORENSIC, {"MemberAccountIds": MEMBERS[:2]})
            params = {"ForensicCollectorRoleArn": forensic["CollectorRoleArn"], "ExternalId": EXTERNAL_ID,
                      "ForensicEbsKeyArn": forensic["EbsKeyArn"]}
            cls.template_role = t.deploy_member(cls.endpoint, REGION, MEMBERS[0], params)["RoleArn"]
            # A hand-made member role as seed makes it for policies = false worlds: the forensic
            # account (its root) trusted with the ExternalId, SourceIdentity in a second statement.
            iam = t.world_clients(cls.endpoint, REGION, MEMBERS[1])("iam")
            cls.hand_made_role = iam.create_role(
                RoleName="ForensnapCollector",
                AssumeRolePolicyDocument=_trust_policy(FORENSIC, EXTERNAL_ID, True))["Role"]["Arn"]
            cls.collector = cls.role_session(FORENSIC, "forensnap-collector", "i-collector")
            cls.operator = cls.user(FORENSIC, "forensnap-operator", policy=None)
            cls.outsider = cls.user(OUTSIDER, "outsider-admin")
            assert control(cls.endpoint, "settings", {})["policies"] is False
        except BaseException:
            cls.tearDownClass()
            raise

    def test_the_templates_trust_policy_with_its_null_condition(self):
        """The member template requires a SourceIdentity with ``Null: {sts:SourceIdentity:
        false}``; the hand-rolled reader this evaluator replaced failed closed on ``Null`` and so
        refused even the collector role with every parameter right."""
        session = self.collector.assume(self.template_role)
        self.assertEqual(session.arn, f"arn:aws:sts::{MEMBERS[0]}:assumed-role/ForensnapCollector/forensnap-{CASE}")
        for what, caller, external_id, source in (
            ("no SourceIdentity", self.collector, EXTERNAL_ID, None),
            ("no ExternalId", self.collector, None, CASE),
            ("another principal of the forensic account", self.operator, EXTERNAL_ID, CASE),
            ("another account", self.outsider, EXTERNAL_ID, CASE),
        ):
            with self.subTest(what):
                self.assert_refused(lambda: caller.assume(self.template_role, external_id, source),
                                    "AccessDenied", "no statement allows sts:AssumeRole")

    def test_a_hand_made_trust_naming_the_account_admits_its_principals(self):
        """Naming the account delegates to its identity policies, which a world without policies
        does not evaluate: any principal of the forensic account is admitted, with the
        ExternalId; nobody else is."""
        for caller in (self.operator, self.collector, self.root(FORENSIC)):
            with self.subTest(caller=caller.arn):
                self.assertIn(f"arn:aws:sts::{MEMBERS[1]}:assumed-role/ForensnapCollector/",
                              caller.assume(self.hand_made_role).arn)
        self.assert_refused(lambda: self.operator.assume(self.hand_made_role, "wrong-external-id-00"),
                            "AccessDenied", "no statement allows sts:AssumeRole")
        self.assert_refused(lambda: self.outsider.assume(self.hand_made_role), "AccessDenied",
                            "no statement allows sts:AssumeRole")


class StackSetTemplateTest(unittest.TestCase):
    """member-role.yaml has nothing account-specific: a StackSet can deploy it unchanged."""

    def test_no_account_id_or_region_is_written_into_the_template(self):
        text = t.MEMBER_TEMPLATE.read_text()
        code = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
        self.assertEqual(re.findall(r"\b\d{12}\b", code), [])
        self.assertEqual(re.findall(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b", code), [])
        self.assertNotIn("arn:aws:", code, "ARNs are built with ${AWS::Partition}")

    def test_two_accounts_resolve_to_the_same_template_but_for_the_account(self):
        template = t.load_template(t.MEMBER_TEMPLATE)
        params = {"ForensicCollectorRoleArn": f"arn:aws:iam::{FORENSIC}:role/forensnap-collector",
                  "ExternalId": EXTERNAL_ID,
                  "ForensicEbsKeyArn": f"arn:aws:kms:{REGION}:{FORENSIC}:key/0f0e0d0c-1111-2222-3333-444455556666"}
        resolved = {}
        for account in MEMBERS[:2]:
            physical = t.physical_ids(template, params, account, REGION)
            resources = t.resolve(template, params, account, REGION, physical,
                                  stack_name=t.stack_instance_name("forensnap-member-role", account, REGION))
            outputs, unresolved = t.resolve_outputs(template, params, account, REGION, physical)
            self.assertEqual(unresolved, {})
            resolved[account] = json.dumps({"resources": resources, "outputs": outputs}, sort_keys=True)
        self.assertIn(MEMBERS[0], resolved[MEMBERS[0]])
        self.assertNotEqual(resolved[MEMBERS[0]], resolved[MEMBERS[1]])
        self.assertEqual(resolved[MEMBERS[0]].replace(MEMBERS[0], MEMBERS[1]), resolved[MEMBERS[1]])

    def test_targets_are_checked_like_create_stack_instances(self):
        for accounts, needle in ((["111111111111", "111111111111"], "listed twice"),
                                 (["11111111111"], "12-digit")):
            with self.subTest(accounts=accounts), self.assertRaises(TemplateError) as caught:
                t.deploy_member_stack_set("http://127.0.0.1:9", REGION, accounts, {})
            self.assertIn(needle, str(caught.exception))

    def test_stack_instance_names_are_stable_and_per_account(self):
        a = t.stack_instance_name("forensnap-member-role", MEMBERS[0], REGION)
        self.assertRegex(a, r"^StackSet-forensnap-member-role-[0-9a-f-]{36}$")
        self.assertEqual(a, t.stack_instance_name("forensnap-member-role", MEMBERS[0], REGION))
        self.assertNotEqual(a, t.stack_instance_name("forensnap-member-role", MEMBERS[1], REGION))


if __name__ == "__main__":
    unittest.main()
