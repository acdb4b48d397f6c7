"""Tests of ``templates``: loading, resolving and deploying forensnap's CloudFormation templates.

Run: ``cd localworld && $PY -m unittest forensnap_world.policy.test_templates -v``. Everything but
``DeployIntoWorldTest`` runs without a server; that one starts the world in-process on a free
loopback port and stops it at the end.
"""

from __future__ import annotations

import json
import re
import threading
import unittest
import urllib.request

import yaml

from . import templates as t
from .templates import TemplateError

ACCOUNT, REGION = "123456789012", "us-east-1"
MEMBERS = ["111111111111", "222222222222"]
FORENSIC_PARAMS = {"MemberAccountIds": MEMBERS}
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/forensnap-collector@sha256:{'ab' * 32}"
SERVICE_PARAMS = {**FORENSIC_PARAMS, "CollectorImage": IMAGE}
"""The forensic stack with its collector service (ECS on Fargate)."""
SERVICE_ONLY = {"EcrApiEndpoint", "EcrDkrEndpoint", "CollectorTaskExecutionRole", "CollectorCluster",
                "CollectorTaskDefinition", "CollectorService"}
"""What the forensic stack makes only with CollectorImage (the repository is always made)."""
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/forensnap-collector"
EBS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f0e0d0c-1111-2222-3333-444455556666"
EXTERNAL_ID = "forensnap-external-id-0001"
MEMBER_PARAMS = {"ForensicCollectorRoleArn": ROLE_ARN, "ExternalId": EXTERNAL_ID, "ForensicEbsKeyArn": EBS_KEY_ARN}

KEYS = {
    "EvidenceKey": "11111111-aaaa-4bbb-8ccc-000000000001",
    "EbsKey": "0f0e0d0c-1111-2222-3333-444455556666",
    "SigningKey": "11111111-aaaa-4bbb-8ccc-000000000003",
}
BUCKET = f"forensnap-evidence-{ACCOUNT}-{REGION}"
CREATED = {
    **{lid: {"Ref": kid, "KeyId": kid, "Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{kid}"} for lid, kid in KEYS.items()},
    "EvidenceBucket": {"Ref": BUCKET, "Arn": f"arn:aws:s3:::{BUCKET}"},
    "CollectorRole": {"Ref": "forensnap-collector", "Arn": ROLE_ARN, "RoleId": "AROAEXAMPLE000000001"},
}


def intrinsics_left(value, path="") -> list[str]:
    """Paths of every intrinsic function (or unsubstituted ${...}) still in ``value``."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" or key.startswith("Fn::"):
                found.append(f"{path}.{key}")
            found += intrinsics_left(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += intrinsics_left(item, f"{path}[{i}]")
    elif isinstance(value, str) and re.search(r"\$\{[^!]", value) and ".Content." not in path:
        # (An SSM document's Content is text for SSM and the shell, where ${...} is the shell's.)
        found.append(f"{path} = {value!r}")
    elif value is t.NO_VALUE:
        found.append(f"{path} = AWS::NoValue")
    return found


def count_long_forms(value, counts: dict) -> None:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key in t.SHORT_FORMS.values() and (key != "Condition" or isinstance(arg, str)):
                counts[key] = counts.get(key, 0) + 1
        for item in value.values():
            count_long_forms(item, counts)
    elif isinstance(value, list):
        for item in value:
            count_long_forms(item, counts)


def statement(document: dict, sid: str) -> dict:
    matches = [s for s in document["Statement"] if s.get("Sid") == sid]
    assert len(matches) == 1, f"{sid}: {len(matches)} statements"
    return matches[0]


def forensic_physical(params=FORENSIC_PARAMS):
    template = t.load_template(t.FORENSIC_TEMPLATE)
    return template, t.physical_ids(template, params, ACCOUNT, REGION, CREATED, placeholders=True)


class LoaderTest(unittest.TestCase):
    def test_every_tag_of_both_templates_becomes_its_long_form(self):
        for path in (t.FORENSIC_TEMPLATE, t.MEMBER_TEMPLATE):
            with self.subTest(template=path.name):
                text = path.read_text()
                code = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
                expected: dict[str, int] = {}
                for tag in re.findall(r"!(\w+)", code):
                    self.assertIn(tag, t.SHORT_FORMS, f"{path.name}: unknown tag !{tag}")
                    expected[t.SHORT_FORMS[tag]] = expected.get(t.SHORT_FORMS[tag], 0) + 1
                template = t.load_template(path)
                counts: dict[str, int] = {}
                count_long_forms(template, counts)
                self.assertEqual(counts, expected)
                self.assertGreater(sum(counts.values()), 20)
                self.assertFalse(re.search(r"'!\w+", repr(template)), "a tag survived as text")

    def test_forensic_template_shapes(self):
        template = t.load_template(t.FORENSIC_TEMPLATE)
        resources = template["Resources"]
        self.assertEqual(resources["PrivateSubnetA"]["Properties"]["AvailabilityZone"],
                         {"Fn::Select": [0, {"Fn::GetAZs": ""}]})
        self.assertEqual(resources["RequestQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
                         {"Fn::GetAtt": ["RequestDeadLetterQueue", "Arn"]})
        self.assertEqual(resources["EvidenceKey"]["Properties"]["KeyPolicy"]["Version"], "2012-10-17")
        self.assertEqual(template["Outputs"]["PrivateSubnetIds"]["Value"],
                         {"Fn::Join": [",", [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]]})
        member = t.load_template(t.MEMBER_TEMPLATE)
        self.assertEqual(member["Conditions"]["RequireSourceIdentitySet"],
                         {"Fn::Equals": [{"Ref": "RequireSourceIdentity"}, "true"]})

    def test_every_short_form(self):
        text = """
Resources:
  R:
    Type: X
    Properties:
      Ref: !Ref P
      SubScalar: !Sub "${AWS::Region}-x"
      SubList: !Sub ["${A}-${B}", {A: !Ref P, B: b}]
      AttDotted: !GetAtt Res.Endpoint.Address
      AttList: !GetAtt [Res, Arn]
      Join: !Join [",", [a, !Ref P]]
      If: !If [C, !Ref P, !Ref AWS::NoValue]
      Select: !Select [1, !Split [":", "a:b"]]
      Map: !FindInMap [M, k1, k2]
      B64: !Base64 hello
      Import: !ImportValue exported
      Azs: !GetAZs ""
      Cidr: !Cidr ["10.0.0.0/16", 2, 8]
      Date: 2012-10-17
Conditions:
  C: !And [!Equals [a, a], !Not [!Condition D]]
  D: !Or [!Equals [a, b], !Equals [b, c]]
"""
        template = t.load_template(text)
        props = template["Resources"]["R"]["Properties"]
        self.assertEqual(props, {
            "Ref": {"Ref": "P"},
            "SubScalar": {"Fn::Sub": "${AWS::Region}-x"},
            "SubList": {"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "P"}, "B": "b"}]},
            "AttDotted": {"Fn::GetAtt": ["Res", "Endpoint.Address"]},
            "AttList": {"Fn::GetAtt": ["Res", "Arn"]},
            "Join": {"Fn::Join": [",", ["a", {"Ref": "P"}]]},
            "If": {"Fn::If": ["C", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]},
            "Select": {"Fn::Select": [1, {"Fn::Split": [":", "a:b"]}]},
            "Map": {"Fn::FindInMap": ["M", "k1", "k2"]},
            "B64": {"Fn::Base64": "hello"},
            "Import": {"Fn::ImportValue": "exported"},
            "Azs": {"Fn::GetAZs": ""},
            "Cidr": {"Fn::Cidr": ["10.0.0.0/16", 2, 8]},
            "Date": "2012-10-17",
        })
        self.assertEqual(template["Conditions"]["C"], {"Fn::And": [
            {"Fn::Equals": ["a", "a"]}, {"Fn::Not": [{"Condition": "D"}]}]})

    def test_loader_stays_safe(self):
        self.assertTrue(issubclass(t.CfnLoader, yaml.SafeLoader))
        with self.assertRaises(TemplateError):
            t.load_template("Resources:\n  R: !!python/object/apply:os.system ['true']\n")
        with self.assertRaises(TemplateError):
            t.load_template("Resources:\n  R: {Type: X, Properties: {A: !GetAtt NoDot}}\n")


class ResolveRealTemplatesTest(unittest.TestCase):
    def test_forensic_template_resolves_completely(self):
        template, physical = forensic_physical(SERVICE_PARAMS)
        resources = t.resolve(template, SERVICE_PARAMS, ACCOUNT, REGION, physical)
        self.assertEqual(set(resources), set(template["Resources"]))
        self.assertEqual(intrinsics_left(resources), [])
        outputs, unresolved = t.resolve_outputs(template, SERVICE_PARAMS, ACCOUNT, REGION, physical)
        self.assertEqual(unresolved, {})
        self.assertEqual(intrinsics_left(outputs), [])
        self.assertEqual(outputs["CollectorRoleArn"], ROLE_ARN)
        self.assertEqual(outputs["EvidenceBucketName"], BUCKET)
        self.assertEqual(outputs["EbsKeyArn"], CREATED["EbsKey"]["Arn"])
        self.assertEqual(outputs["Region"], REGION)
        self.assertEqual(outputs["CollectorServiceName"], "forensnap-collector")

    def test_without_an_image_there_is_no_service(self):
        """The default: no cluster, task definition, service, execution role or ECR endpoints
        (and no outputs naming them); the repository is made, to push the first image to."""
        template, physical = forensic_physical()
        self.assertFalse(t.evaluate_conditions(template, FORENSIC_PARAMS)["DeployCollectorService"])
        resources = t.resolve(template, FORENSIC_PARAMS, ACCOUNT, REGION, physical)
        self.assertEqual(set(template["Resources"]) - set(resources), SERVICE_ONLY)
        outputs, unresolved = t.resolve_outputs(template, FORENSIC_PARAMS, ACCOUNT, REGION, physical)
        self.assertEqual(unresolved, {})
        for name in ("CollectorClusterName", "CollectorServiceName", "CollectorTaskExecutionRoleArn"):
            self.assertNotIn(name, outputs)
        self.assertEqual(outputs["CollectorRepositoryUri"],
                         f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/forensnap-collector")

    def test_collector_image_must_be_an_ecr_image_with_a_tag_or_digest(self):
        template = t.load_template(t.FORENSIC_TEMPLATE)
        repository = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/forensnap-collector"
        for image in (IMAGE, f"{repository}:1.4.0-config", f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/x:v1"):
            with self.subTest(image=image):
                t.resolve_parameters(template, {**FORENSIC_PARAMS, "CollectorImage": image})
        for image in (repository, "forensnap:latest", "docker.io/library/forensnap:1",
                      f"{repository}@sha256:abc"):
            with self.subTest(image=image):
                with self.assertRaises(TemplateError) as caught:
                    t.resolve_parameters(template, {**FORENSIC_PARAMS, "CollectorImage": image})
                self.assertIn("Parameters.CollectorImage", str(caught.exception))

    def test_collector_service_values(self):
        from .evaluate import _arn_like

        template, physical = forensic_physical(SERVICE_PARAMS)
        r = t.resolve(template, SERVICE_PARAMS, ACCOUNT, REGION, physical)
        repository_arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/forensnap-collector"
        log_group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/forensnap/collector:*"

        # The execution role: exactly what pulling the image and writing the log need, on this
        # stack's repository and log group (the suite's least-privilege check never sees ECS's
        # requests, so the document is pinned here), for ECS tasks of this account only.
        role = r["CollectorTaskExecutionRole"]["Properties"]
        self.assertEqual(role["RoleName"], "forensnap-collector-execution")
        self.assertNotIn("ManagedPolicyArns", role)
        self.assertEqual(role["AssumeRolePolicyDocument"]["Statement"], [{
            "Sid": "EcsTasksOfThisAccount", "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                          "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"}}}])
        self.assertEqual(role["Policies"], [{"PolicyName": "pull-image-write-logs", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [
                {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {"Sid": "PullCollectorImage", "Effect": "Allow",
                 "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": repository_arn},
                {"Sid": "WriteCollectorLog", "Effect": "Allow",
                 "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": log_group_arn}]}}])

        task = r["CollectorTaskDefinition"]["Properties"]
        self.assertEqual((task["RequiresCompatibilities"], task["NetworkMode"], task["Cpu"], task["Memory"]),
                         (["FARGATE"], "awsvpc", "2048", "8192"))
        self.assertEqual(task["RuntimePlatform"], {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "X86_64"})
        # forensnap runs as the collector role; ECS pulls and logs as the execution role.
        self.assertEqual(task["TaskRoleArn"], ROLE_ARN)
        self.assertEqual(task["ExecutionRoleArn"], f"arn:aws:iam::{ACCOUNT}:role/forensnap-collector-execution")
        container, = task["ContainerDefinitions"]
        self.assertEqual(container["Image"], IMAGE)
        self.assertNotIn("Command", container)  # the image's: daemon --config /etc/forensnap/forensnap.toml
        self.assertEqual((container["User"], container["Privileged"], container["ReadonlyRootFilesystem"]),
                         ("65532:65532", False, True))
        self.assertEqual(container["StopTimeout"], 120)  # the Fargate maximum, > shutdown_seconds
        self.assertEqual(container["LinuxParameters"], {"InitProcessEnabled": True, "Capabilities": {"Drop": ["ALL"]}})
        self.assertEqual(container["LogConfiguration"]["LogDriver"], "awslogs")
        self.assertEqual(container["LogConfiguration"]["Options"]["awslogs-group"], "/forensnap/collector")
        self.assertEqual(container["LogConfiguration"]["Options"]["awslogs-region"], REGION)
        for key in ("PortMappings", "Secrets", "MountPoints", "VolumesFrom"):
            self.assertNotIn(key, container)
        self.assertNotIn("Volumes", task)

        service = r["CollectorService"]["Properties"]
        self.assertEqual((service["LaunchType"], service["DesiredCount"], service["EnableExecuteCommand"]),
                         ("FARGATE", "2", False))
        self.assertEqual(service["Cluster"], "forensnap-collector")
        self.assertEqual(service["DeploymentConfiguration"]["MaximumPercent"], 100)
        self.assertEqual(service["DeploymentConfiguration"]["MinimumHealthyPercent"], 50)
        self.assertEqual(service["NetworkConfiguration"]["AwsvpcConfiguration"], {
            "AssignPublicIp": "DISABLED", "SecurityGroups": [physical["CollectorSecurityGroup"]["Ref"]],
            "Subnets": [physical["PrivateSubnetA"]["Ref"], physical["PrivateSubnetB"]["Ref"]]})
        self.assertEqual(set(template["Resources"]["CollectorService"]["DependsOn"]),
                         {"CollectorPolicy", "EcrApiEndpoint", "EcrDkrEndpoint", "LogsEndpoint", "S3GatewayEndpoint"})
        # One replica: the old task stops before the new one starts (50% of 1 rounds up to 1).
        # None: the service stays, with no task.
        for replicas, minimum in (("1", 0), ("3", 50), ("0", 50)):
            with self.subTest(replicas=replicas):
                params = {**SERVICE_PARAMS, "CollectorReplicas": replicas}
                one = t.resolve(template, params, ACCOUNT, REGION, physical, only=["CollectorService"])
                config = one["CollectorService"]["Properties"]
                self.assertEqual((config["DesiredCount"], config["DeploymentConfiguration"]["MinimumHealthyPercent"]),
                                 (replicas, minimum))

        # The ECR endpoints: pulling the image in subnets without NAT.
        for lid, service_name in (("EcrApiEndpoint", "ecr.api"), ("EcrDkrEndpoint", "ecr.dkr")):
            endpoint = r[lid]["Properties"]
            self.assertEqual((endpoint["ServiceName"], endpoint["VpcEndpointType"], endpoint["PrivateDnsEnabled"]),
                             (f"com.amazonaws.{REGION}.{service_name}", "Interface", True))

        # The collector role's trust lets this service's tasks in (ECS presents the task ARN),
        # and no other account's.
        trust = statement(r["CollectorRole"]["Properties"]["AssumeRolePolicyDocument"], "EcsTaskRole")
        pattern = trust["Condition"]["ArnLike"]["aws:SourceArn"]
        task_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/forensnap-collector/0123456789abcdef0123456789abcdef"
        self.assertTrue(_arn_like(pattern, task_arn))
        self.assertFalse(_arn_like(pattern, task_arn.replace(ACCOUNT, "999999999999")))
        self.assertFalse(_arn_like(pattern, task_arn.replace(REGION, "eu-west-1")))

        repository = r["CollectorRepository"]["Properties"]
        self.assertEqual((repository["RepositoryName"], repository["ImageTagMutability"]),
                         ("forensnap-collector", "IMMUTABLE"))
        self.assertNotIn("LifecyclePolicy", repository)  # every image that collected a case is kept
        self.assertEqual(template["Resources"]["CollectorRepository"]["DeletionPolicy"], "Retain")

    def test_member_template_resolves_completely(self):
        template = t.load_template(t.MEMBER_TEMPLATE)
        physical = t.physical_ids(template, MEMBER_PARAMS, "111111111111", REGION)
        resources = t.resolve(template, MEMBER_PARAMS, "111111111111", REGION, physical)
        self.assertEqual(intrinsics_left(resources), [])
        outputs, unresolved = t.resolve_outputs(template, MEMBER_PARAMS, "111111111111", REGION, physical)
        self.assertEqual(unresolved, {})
        self.assertEqual(outputs, {"RoleArn": "arn:aws:iam::111111111111:role/ForensnapCollector",
                                   "RoleName": "ForensnapCollector", "AccountId": "111111111111"})

    def test_forensic_values(self):
        template, physical = forensic_physical()
        r = t.resolve(template, FORENSIC_PARAMS, ACCOUNT, REGION, physical)
        bucket_policy = r["EvidenceBucketPolicy"]["Properties"]
        self.assertEqual(bucket_policy["Bucket"], BUCKET)
        deny_writes = statement(bucket_policy["PolicyDocument"], "DenyWritesExceptCollectorRole")
        self.assertEqual(deny_writes["Condition"], {"ArnNotEquals": {"aws:PrincipalArn": ROLE_ARN}})
        self.assertEqual(deny_writes["Resource"], f"arn:aws:s3:::{BUCKET}/*")
        self.assertEqual(statement(bucket_policy["PolicyDocument"], "DenyInsecureTransport")["Resource"],
                         [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"])
        other_keys = statement(bucket_policy["PolicyDocument"], "DenyOtherKmsKeys")["Condition"]
        self.assertEqual([c["s3:x-amz-server-side-encryption-aws-kms-key-id"] for c in other_keys.values()
                          if c["s3:x-amz-server-side-encryption-aws-kms-key-id"] != "false"],
                         [CREATED["EvidenceKey"]["Arn"]])

        ebs_policy = r["EbsKey"]["Properties"]["KeyPolicy"]
        via_ec2 = statement(ebs_policy, "MemberCollectorRolesUseViaEc2")
        self.assertEqual(via_ec2["Principal"], {"AWS": MEMBERS})
        self.assertEqual(via_ec2["Condition"]["StringEquals"]["kms:ViaService"], "ec2.us-east-1.amazonaws.com")
        self.assertEqual(via_ec2["Condition"]["ArnLike"]["aws:PrincipalArn"], "arn:aws:iam::*:role/ForensnapCollector")
        self.assertEqual(statement(ebs_policy, "ForensicAccountAdminAndIamDelegation")["Principal"],
                         {"AWS": f"arn:aws:iam::{ACCOUNT}:root"})

        signing = r["SigningKey"]["Properties"]
        self.assertEqual((signing["KeySpec"], signing["KeyUsage"]), ("ECC_NIST_P256", "SIGN_VERIFY"))
        self.assertEqual(statement(signing["KeyPolicy"], "DenySignExceptCollectorRole")["Condition"],
                         {"ArnNotEquals": {"aws:PrincipalArn": ROLE_ARN}})
        self.assertEqual(statement(signing["KeyPolicy"], "AnyoneInAccountVerifies")["Condition"],
                         {"StringEquals": {"kms:CallerAccount": ACCOUNT}})

        bucket = r["EvidenceBucket"]["Properties"]
        self.assertEqual(bucket["BucketName"], BUCKET)
        self.assertEqual(bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"], {"Mode": "COMPLIANCE", "Days": "365"})
        self.assertEqual(bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                         ["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], CREATED["EvidenceKey"]["Arn"])

        policy = r["CollectorPolicy"]["Properties"]
        self.assertEqual(policy["RoleName"], "forensnap-collector")
        document = policy["PolicyDocument"]
        self.assertEqual(statement(document, "UseEbsKey")["Resource"], CREATED["EbsKey"]["Arn"])
        self.assertEqual(statement(document, "AssumeMemberCollectorRoles")["Resource"],
                         "arn:aws:iam::*:role/ForensnapCollector")
        self.assertEqual(statement(document, "UseMemberCustomerKeysViaEc2")["Condition"]["StringEquals"],
                         {"aws:ResourceAccount": MEMBERS, "kms:ViaService": "ec2.us-east-1.amazonaws.com"})
        self.assertEqual(statement(document, "EvidenceKeyViaServices")["Condition"]["StringEquals"]["kms:ViaService"],
                         ["s3.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com"])
        # The daemon's calls, each on its own queue or table; no log rights until something
        # writes logs (least privilege).
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensnap-requests"
        self.assertEqual(statement(document, "CollectionRequests")["Resource"], queue_arn)
        self.assertEqual(statement(document, "CollectionRequests")["Action"], [
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage",
            "sqs:GetQueueAttributes"])
        self.assertEqual(statement(document, "DeadLetterRequests")["Resource"], f"{queue_arn}-dlq")
        self.assertEqual(statement(document, "DeadLetterRequests")["Action"],
                         ["sqs:SendMessage", "sqs:GetQueueAttributes"])
        self.assertEqual(statement(document, "CaseState")["Resource"],
                         f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/forensnap-cases")
        sids = {st.get("Sid") for st in document["Statement"]}
        self.assertNotIn("CollectorLogs", sids)

        # The intake: two rules on the forensnap bus feed the queue; the queue and key policies
        # let EventBridge in for those two rules only.
        rules = [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/forensnap-intake/forensnap-guardduty-findings",
                 f"arn:aws:events:{REGION}:{ACCOUNT}:rule/forensnap-intake/forensnap-securityhub-custom-action"]
        self.assertEqual([physical[lid]["Arn"] for lid in ("GuardDutyFindingsRule", "SecurityHubCustomActionRule")], rules)
        send = statement(r["RequestQueuePolicy"]["Properties"]["PolicyDocument"], "IntakeRulesSendRequests")
        self.assertEqual((send["Principal"], send["Action"], send["Resource"]),
                         ({"Service": "events.amazonaws.com"}, "sqs:SendMessage", queue_arn))
        self.assertEqual(send["Condition"], {"ArnEquals": {"aws:SourceArn": rules}})
        use_key = statement(r["EvidenceKey"]["Properties"]["KeyPolicy"], "IntakeRulesUseKeyForRequestQueue")
        self.assertEqual(use_key["Condition"], {"ArnEquals": {"aws:SourceArn": rules},
                                                "StringEquals": {"kms:EncryptionContext:aws:sqs:arn": queue_arn}})
        guardduty = r["GuardDutyFindingsRule"]["Properties"]
        self.assertEqual(guardduty["EventBusName"], "forensnap-intake")
        self.assertEqual(guardduty["EventPattern"], {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"],
                                                     "detail": {"resource": {"resourceType": ["Instance"]}}})
        self.assertEqual(guardduty["Targets"], [{"Id": "request-queue", "Arn": queue_arn}])
        # No event source accounts (the default): the bus has no policy at all.
        self.assertNotIn("Policy", r["IntakeEventBus"]["Properties"])
        sources = {**FORENSIC_PARAMS, "EventSourceAccountIds": ["999999999999", "888888888888"]}
        bus = t.resolve(template, sources, ACCOUNT, REGION, physical)["IntakeEventBus"]["Properties"]
        self.assertEqual(bus["Policy"]["Statement"], [{
            "Sid": "EventSourceAccountsPutEvents", "Effect": "Allow",
            "Principal": {"AWS": ["999999999999", "888888888888"]}, "Action": "events:PutEvents",
            "Resource": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/forensnap-intake"}])

        trust = r["CollectorRole"]["Properties"]["AssumeRolePolicyDocument"]
        self.assertEqual(statement(trust, "EcsTaskRole")["Condition"], {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"}})
        self.assertEqual(r["EvidenceKeyAlias"]["Properties"], {"AliasName": "alias/forensnap-evidence",
                                                               "TargetKeyId": KEYS["EvidenceKey"]})
        self.assertEqual(r["RequestDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]["sourceQueueArns"],
                         [f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensnap-requests"])
        self.assertEqual(r["PrivateSubnetB"]["Properties"]["AvailabilityZone"], "us-east-1b")

    def test_member_values_and_condition(self):
        template = t.load_template(t.MEMBER_TEMPLATE)
        for require, condition in (
            ("true", {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}, "Null": {"sts:SourceIdentity": "false"}}),
            ("false", {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}),
        ):
            with self.subTest(RequireSourceIdentity=require):
                params = {**MEMBER_PARAMS, "RequireSourceIdentity": require}
                self.assertEqual(t.evaluate_conditions(template, params), {"RequireSourceIdentitySet": require == "true",
                                                                           "ReadTrailBucket": False,
                                                                           "TrailKeyPrefixSet": False})
                physical = t.physical_ids(template, params, "111111111111", REGION)
                role = t.resolve(template, params, "111111111111", REGION, physical)["CollectorRole"]["Properties"]
                trust = role["AssumeRolePolicyDocument"]
                first = statement(trust, "ForensicCollectorWithExternalId")
                self.assertEqual(first["Principal"], {"AWS": ROLE_ARN})
                self.assertEqual(first["Condition"], condition)
                self.assertEqual(statement(trust, "ForensicCollectorSetsCaseSourceIdentity")["Condition"],
                                 {"StringLike": {"sts:SourceIdentity": "*"}})
                inline = role["Policies"][0]["PolicyDocument"]
                self.assertEqual(statement(inline, "DenySharingOutsideForensicAccount")["Condition"],
                                 {"ForAnyValue:StringNotEquals": {"ec2:Add/userId": ACCOUNT}})
                self.assertEqual(statement(inline, "ForensicEbsKeyViaEc2")["Resource"], EBS_KEY_ARN)
                self.assertEqual(statement(inline, "CreateSnapshots")["Resource"], [
                    "arn:aws:ec2:*:111111111111:instance/*", "arn:aws:ec2:*:111111111111:volume/*",
                    "arn:aws:ec2:*::snapshot/*"])


class ResolveErrorsTest(unittest.TestCase):
    def test_unresolvable_reference_names_the_path_and_logical_id(self):
        template = t.load_template(t.FORENSIC_TEMPLATE)
        created = {k: v for k, v in CREATED.items() if k != "EbsKey"}
        physical = t.physical_ids(template, FORENSIC_PARAMS, ACCOUNT, REGION, created)
        self.assertNotIn("EbsKey", physical)  # a key id is never predictable
        with self.assertRaises(TemplateError) as caught:
            t.resolve(template, FORENSIC_PARAMS, ACCOUNT, REGION, physical, only=["CollectorPolicy"])
        message = str(caught.exception)
        sids = [s["Sid"] for s in template["Resources"]["CollectorPolicy"]["Properties"]["PolicyDocument"]["Statement"]]
        index = sids.index("UseEbsKey")  # the first statement naming EbsKey
        self.assertIn(f"Resources.CollectorPolicy.Properties.PolicyDocument.Statement[{index}].Resource", message)
        self.assertIn("EbsKey", message)

    def test_unknown_names(self):
        template = t.load_template("""
Resources:
  A:
    Type: X
    Properties:
      List: [ok, {Nested: !Sub "x-${Missing}"}]
  B:
    Type: X
    Properties:
      Att: !GetAtt A.Nope
""")
        with self.assertRaises(TemplateError) as caught:
            t.resolve(template, {}, ACCOUNT, REGION, {}, only=["A"])
        self.assertIn("Resources.A.Properties.List[1].Nested", str(caught.exception))
        self.assertIn("Missing", str(caught.exception))
        with self.assertRaises(TemplateError) as caught:
            t.resolve(template, {}, ACCOUNT, REGION, {"A": {"Ref": "a", "Arn": "arn"}}, only=["B"])
        self.assertIn("Resources.B.Properties.Att", str(caught.exception))
        self.assertIn("A.Nope", str(caught.exception))

    def test_parameters_are_checked(self):
        forensic = t.load_template(t.FORENSIC_TEMPLATE)
        cases = [
            ({}, "Parameters.MemberAccountIds: no value given and no Default"),
            ({**FORENSIC_PARAMS, "NamePrefix": "Bad_Prefix"}, "Parameters.NamePrefix"),
            ({**FORENSIC_PARAMS, "EvidenceRetentionDays": "0"}, "MinValue"),
            ({**FORENSIC_PARAMS, "LogRetentionDays": "7"}, "AllowedValues"),
            ({**FORENSIC_PARAMS, "Nope": "x"}, "Nope not declared"),
        ]
        for params, needle in cases:
            with self.subTest(params=params):
                with self.assertRaises(TemplateError) as caught:
                    t.resolve(forensic, params, ACCOUNT, REGION, CREATED, only=["EbsKey"])
                self.assertIn(needle, str(caught.exception))
        member = t.load_template(t.MEMBER_TEMPLATE)
        with self.assertRaises(TemplateError) as caught:
            t.resolve(member, {**MEMBER_PARAMS, "ExternalId": "short"}, ACCOUNT, REGION, {})
        self.assertIn("Parameters.ExternalId", str(caught.exception))
        values = t.resolve_parameters(forensic, {"MemberAccountIds": "111111111111, 222222222222"})
        self.assertEqual(values["MemberAccountIds"], MEMBERS)
        self.assertEqual(values["EvidenceRetentionDays"], "365")
        self.assertEqual(values["NamePrefix"], "forensnap")


class IntrinsicsTest(unittest.TestCase):
    TEMPLATE = """
Parameters:
  Env: {Type: String, Default: prod}
  Ids: {Type: CommaDelimitedList, Default: "a,b,c"}
  Zones: {Type: "List<AWS::EC2::AvailabilityZone::Name>", Default: "us-east-1a,us-east-1b"}
Mappings:
  Sizes:
    prod: {Days: 365}
    dev: {Days: 1}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  Both: !And [!Condition IsProd, !Or [!Equals [!Select [0, !Ref Ids], a], !Condition IsDev]]
Resources:
  Thing:
    Type: X
    Properties:
      Name: !Sub "${AWS::StackName}-${Env}-${AWS::AccountId}-${AWS::Partition}-${AWS::URLSuffix}"
      Literal: !Sub "${!NotAVariable} ${Env}"
      ListSub: !Sub ["${Pre}/${Other.Arn}/${AWS::Region}", {Pre: !Join ["-", !Ref Ids]}]
      Att: !GetAtt [Other, Arn]
      Dotted: !GetAtt Other.Endpoint.Address
      Second: !Select ["1", !Split [",", "x,y,z"]]
      Days: !FindInMap [Sizes, !Ref Env, Days]
      Cidrs: !Cidr ["10.0.0.0/16", 3, 8]
      Azs: !GetAZs ""
      Zone: !Select [1, !Ref Zones]
      B64: !Base64 {"Fn::Sub": "${Env}"}
      Imported: !ImportValue shared-vpc
      Dropped: !If [IsDev, dev-only, !Ref AWS::NoValue]
      Kept: !If [Both, kept-yes, kept-no]
      Items:
        - one
        - !If [IsProd, !Ref AWS::NoValue, two]
        - !Ref AWS::NoValue
        - three
      Statement:
        Condition: !If [IsProd, {StringEquals: {k: v}}, !Ref AWS::NoValue]
        Effect: Allow
  Other:
    Type: Y
  DevOnly:
    Type: Z
    Condition: IsDev
  UsesDevOnly:
    Type: Z
    Properties:
      X: !Ref DevOnly
"""

    def resolved(self, params=None):
        template = t.load_template(self.TEMPLATE)
        physical = {"Other": {"Ref": "other-1", "Arn": "arn:other", "Endpoint.Address": "h.example"}}
        return t.resolve(template, params or {}, ACCOUNT, REGION, physical, stack_name="stk",
                         only=["Thing"], imports={"shared-vpc": "vpc-123"})["Thing"]["Properties"]

    def test_functions(self):
        p = self.resolved()
        self.assertEqual(p["Name"], f"stk-prod-{ACCOUNT}-aws-amazonaws.com")
        self.assertEqual(p["Literal"], "${NotAVariable} prod")
        self.assertEqual(p["ListSub"], "a-b-c/arn:other/us-east-1")
        self.assertEqual(p["Att"], "arn:other")
        self.assertEqual(p["Dotted"], "h.example")
        self.assertEqual(p["Second"], "y")
        self.assertEqual(p["Days"], 365)
        self.assertEqual(p["Cidrs"], ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"])
        self.assertEqual(p["Azs"], ["us-east-1a", "us-east-1b", "us-east-1c"])
        self.assertEqual(p["Zone"], "us-east-1b")
        self.assertEqual(p["B64"], "cHJvZA==")
        self.assertEqual(p["Imported"], "vpc-123")
        self.assertEqual(intrinsics_left({k: v for k, v in p.items() if k != "Literal"}), [])

    def test_no_value_removes_keys_and_items(self):
        p = self.resolved()
        self.assertNotIn("Dropped", p)
        self.assertEqual(p["Items"], ["one", "three"])
        self.assertEqual(p["Statement"], {"Condition": {"StringEquals": {"k": "v"}}, "Effect": "Allow"})
        dev = self.resolved({"Env": "dev"})
        self.assertEqual(dev["Dropped"], "dev-only")
        self.assertEqual(dev["Items"], ["one", "two", "three"])
        self.assertEqual(dev["Statement"], {"Effect": "Allow"})

    def test_conditions(self):
        template = t.load_template(self.TEMPLATE)
        self.assertEqual(t.evaluate_conditions(template, {}), {"IsProd": True, "IsDev": False, "Both": True})
        self.assertEqual(t.evaluate_conditions(template, {"Env": "dev"}), {"IsProd": False, "IsDev": True, "Both": False})
        self.assertEqual(self.resolved()["Kept"], "kept-yes")
        self.assertEqual(self.resolved({"Env": "dev"})["Kept"], "kept-no")
        # A resource whose Condition is false is not created, and a Ref to it is an error.
        physical = {"Other": {"Ref": "o", "Arn": "a"}}
        resources = t.resolve(template, {}, ACCOUNT, REGION, physical, only=["Other", "DevOnly"])
        self.assertEqual(list(resources), ["Other"])
        with self.assertRaises(TemplateError) as caught:
            t.resolve(template, {}, ACCOUNT, REGION, physical, only=["UsesDevOnly"])
        self.assertIn("Resources.UsesDevOnly.Properties.X", str(caught.exception))
        self.assertIn("Condition IsDev is false", str(caught.exception))

    def test_condition_errors(self):
        template = t.load_template("""
Conditions:
  Loop: !Not [!Condition Loop]
Resources:
  R: {Type: X, Properties: {A: !If [Loop, a, b], B: !If [Nope, a, b], C: !Equals [a, b]}}
""")
        for prop, needle in (("A", "refers to itself"), ("B", "no condition Nope"), ("C", "only allowed in Conditions")):
            with self.subTest(prop=prop):
                resource = {"Type": "X", "Properties": {prop: template["Resources"]["R"]["Properties"][prop]}}
                with self.assertRaises(TemplateError) as caught:
                    t.resolve({**template, "Resources": {"R": resource}}, {}, ACCOUNT, REGION, {})
                self.assertIn(needle, str(caught.exception))


class OrderAndPhysicalIdsTest(unittest.TestCase):
    def test_forensic_deploy_order(self):
        template = t.load_template(t.FORENSIC_TEMPLATE)
        order = t.deploy_order(template)
        self.assertEqual(sorted(order), sorted(template["Resources"]))
        position = {lid: i for i, lid in enumerate(order)}
        for lid, needs in t.dependencies(template).items():
            for need in needs:
                self.assertLess(position[need], position[lid], f"{need} before {lid}")
        self.assertEqual(t.dependencies(template)["CollectorRole"], set())
        self.assertEqual(t.dependencies(template)["CollectorPolicy"], {
            "CollectorRole", "EbsKey", "EvidenceKey", "SigningKey", "EvidenceBucket", "TransferBucket",
            "RequestQueue", "RequestDeadLetterQueue", "CaseTable"})
        # The key names the intake rules by ARN built from their names, not GetAtt: the rules
        # target the queue, which is encrypted with the key.
        self.assertEqual(t.dependencies(template)["EvidenceKey"], set())
        for later in ("SigningKey", "EvidenceBucketPolicy", "CollectorPolicy"):
            self.assertLess(position["CollectorRole"], position[later])

    def test_cycle_is_an_error(self):
        template = t.load_template("""
Resources:
  A: {Type: X, Properties: {B: !GetAtt B.Arn}}
  B: {Type: X, Properties: {A: !Sub "${A}"}}
  C: {Type: X, DependsOn: A}
""")
        with self.assertRaises(TemplateError) as caught:
            t.deploy_order(template)
        self.assertIn("cycle", str(caught.exception))

    def test_predicted_ids(self):
        template = t.load_template(t.FORENSIC_TEMPLATE)
        physical = t.physical_ids(template, FORENSIC_PARAMS, ACCOUNT, REGION, {})
        self.assertEqual(physical["CollectorRole"], {"Ref": "forensnap-collector", "Arn": ROLE_ARN})
        self.assertEqual(physical["EvidenceBucket"]["Arn"], f"arn:aws:s3:::{BUCKET}")
        self.assertEqual(physical["CollectorLogGroup"]["Arn"], f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/forensnap/collector:*")
        self.assertEqual(physical["RequestQueue"]["Arn"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensnap-requests")
        self.assertEqual(physical["EbsKeyAlias"], {"Ref": "alias/forensnap-ebs"})
        for unpredictable in ("EvidenceKey", "EbsKey", "SigningKey", "Vpc", "PrivateSubnetA"):
            self.assertNotIn(unpredictable, physical)
        placeholders = t.physical_ids(template, FORENSIC_PARAMS, ACCOUNT, REGION, {}, placeholders=True)
        self.assertTrue(placeholders["Vpc"]["Ref"].startswith("vpc-"))
        self.assertEqual(placeholders, t.physical_ids(template, FORENSIC_PARAMS, ACCOUNT, REGION, {}, placeholders=True))
        created = t.physical_ids(template, FORENSIC_PARAMS, ACCOUNT, REGION, CREATED, placeholders=True)
        self.assertEqual(created["EbsKey"], CREATED["EbsKey"])


class DeployIntoWorldTest(unittest.TestCase):
    """Both templates deployed into an in-process world; every policy read back equals the resolved one."""

    @classmethod
    def setUpClass(cls):
        from ..server import make_world_server

        cls.server = make_world_server("127.0.0.1", 0)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.endpoint = f"http://127.0.0.1:{cls.server.server_port}"
        try:
            cls.forensic = t.deploy(t.FORENSIC_TEMPLATE, cls.endpoint, REGION, ACCOUNT, SERVICE_PARAMS,
                                    stack_name="forensnap-forensic")
            cls.member_params = {"ForensicCollectorRoleArn": cls.forensic.outputs["CollectorRoleArn"],
                                 "ExternalId": EXTERNAL_ID, "ForensicEbsKeyArn": cls.forensic.outputs["EbsKeyArn"]}
            cls.member = t.deploy(t.MEMBER_TEMPLATE, cls.endpoint, REGION, MEMBERS[0], cls.member_params,
                                  stack_name="forensnap-member")
            cls.member2_outputs = t.deploy_member(cls.endpoint, REGION, MEMBERS[1],
                                                  {**cls.member_params, "RequireSourceIdentity": "false"})
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{cls.endpoint}/moto-api/reset", method="POST"), timeout=30).read()
        finally:
            cls.server.shutdown()
            cls.server.server_close()
            cls.thread.join(timeout=10)

    def clients(self, account):
        return t.world_clients(self.endpoint, REGION, account)

    def test_outputs(self):
        outputs = self.forensic.outputs
        self.assertEqual(outputs["EvidenceBucketName"], BUCKET)
        self.assertEqual(outputs["CollectorRoleArn"], ROLE_ARN)
        for name in ("EvidenceKeyArn", "EbsKeyArn", "SigningKeyArn"):
            self.assertRegex(outputs[name], rf"^arn:aws:kms:{REGION}:{ACCOUNT}:key/[0-9a-f-]{{36}}$")
        self.assertEqual(outputs["EbsKeyAlias"], "alias/forensnap-ebs")
        self.assertEqual(outputs["CollectorInstanceProfileArn"], f"arn:aws:iam::{ACCOUNT}:instance-profile/forensnap-collector")
        self.assertEqual(set(self.forensic.unresolved_outputs),
                         {"VpcId", "PrivateSubnetIds", "EndpointSecurityGroupId", "CollectorSecurityGroupId"})
        self.assertEqual({lid for lid in self.forensic.skipped},
                         {lid for lid, r in t.load_template(t.FORENSIC_TEMPLATE)["Resources"].items()
                          if r["Type"].startswith(("AWS::EC2::", "AWS::ECS::", "AWS::ECR::"))
                          or r["Type"] == "AWS::Logs::LogGroup"})
        self.assertIn("CollectorTaskExecutionRole", self.forensic.resources)
        self.assertEqual(outputs["CollectorRepositoryUri"], f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/forensnap-collector")
        self.assertEqual((outputs["CollectorClusterName"], outputs["CollectorServiceName"]),
                         ("forensnap-collector", "forensnap-collector"))
        self.assertEqual(outputs["CollectorTaskExecutionRoleArn"],
                         f"arn:aws:iam::{ACCOUNT}:role/forensnap-collector-execution")
        self.assertEqual(self.member.outputs["RoleArn"], f"arn:aws:iam::{MEMBERS[0]}:role/ForensnapCollector")
        self.assertEqual(self.member2_outputs, {"RoleArn": f"arn:aws:iam::{MEMBERS[1]}:role/ForensnapCollector",
                                                "RoleName": "ForensnapCollector", "AccountId": MEMBERS[1]})

    def test_what_the_world_did_not_apply(self):
        self.assertEqual(self.forensic.ignored, {
            **{k: ["PendingWindowInDays: applies only to ScheduleKeyDeletion, nothing to create"]
               for k in ("EvidenceKey", "EbsKey", "SigningKey")},
            "RequestDeadLetterQueue": ["RedriveAllowPolicy: not kept by the world (absent from GetQueueAttributes All)"],
        })
        self.assertEqual(self.member.ignored, {
            "MemoryCaptureDocument": ["UpdateMethod: applies only to stack updates, nothing to create"]})

    def test_deployed_equals_full_resolution(self):
        """What was deployed resource by resource is the whole template resolved with the real ids."""
        template = t.load_template(t.FORENSIC_TEMPLATE)
        resolved = t.resolve(template, SERVICE_PARAMS, ACCOUNT, REGION, self.forensic.physical,
                             stack_name="forensnap-forensic", only=list(self.forensic.resources))
        self.assertEqual(resolved, self.forensic.resources)
        self.assertEqual(intrinsics_left(resolved), [])

    def test_key_policies_and_settings_round_trip(self):
        kms = self.clients(ACCOUNT)("kms")
        for lid in ("EvidenceKey", "EbsKey", "SigningKey"):
            with self.subTest(key=lid):
                props = self.forensic.resources[lid]["Properties"]
                key_id = self.forensic.physical[lid]["KeyId"]
                stored = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
                self.assertEqual(json.loads(stored), props["KeyPolicy"])
                meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
                self.assertEqual((meta["KeySpec"], meta["KeyUsage"], meta["Description"]),
                                 (props["KeySpec"], props["KeyUsage"], props["Description"]))
                self.assertEqual(kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"],
                                 props.get("EnableKeyRotation", False))
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        for alias, lid in (("alias/forensnap-evidence", "EvidenceKey"), ("alias/forensnap-ebs", "EbsKey"),
                           ("alias/forensnap-signing", "SigningKey")):
            self.assertEqual(aliases[alias], self.forensic.physical[lid]["KeyId"])

    def test_bucket_policy_and_settings_round_trip(self):
        s3 = self.clients(ACCOUNT)("s3")
        policy = self.forensic.resources["EvidenceBucketPolicy"]["Properties"]["PolicyDocument"]
        self.assertEqual(json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]), policy)
        lock = s3.get_object_lock_configuration(Bucket=BUCKET)["ObjectLockConfiguration"]
        self.assertEqual(lock["ObjectLockEnabled"], "Enabled")
        self.assertEqual((lock["Rule"]["DefaultRetention"]["Mode"], lock["Rule"]["DefaultRetention"]["Days"]), ("COMPLIANCE", 365))
        self.assertEqual(s3.get_bucket_versioning(Bucket=BUCKET)["Status"], "Enabled")
        rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"],
                         {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.forensic.outputs["EvidenceKeyArn"]})
        self.assertTrue(rule["BucketKeyEnabled"])
        self.assertTrue(all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values()))

    def test_forensic_role_policies_round_trip(self):
        iam = self.clients(ACCOUNT)("iam")
        props = self.forensic.resources["CollectorRole"]["Properties"]
        role = iam.get_role(RoleName="forensnap-collector")["Role"]
        self.assertEqual(role["AssumeRolePolicyDocument"], props["AssumeRolePolicyDocument"])
        self.assertEqual(role["MaxSessionDuration"], 3600)
        self.assertEqual(role["Arn"], ROLE_ARN)
        inline = self.forensic.resources["CollectorPolicy"]["Properties"]
        stored = iam.get_role_policy(RoleName="forensnap-collector", PolicyName=inline["PolicyName"])
        self.assertEqual(stored["PolicyDocument"], inline["PolicyDocument"])
        self.assertEqual(iam.list_role_policies(RoleName="forensnap-collector")["PolicyNames"], ["forensnap-collector"])
        profile = iam.get_instance_profile(InstanceProfileName="forensnap-collector")["InstanceProfile"]
        self.assertEqual([r["RoleName"] for r in profile["Roles"]], ["forensnap-collector"])

    def test_execution_role_round_trip(self):
        """The collector service's task execution role: its trust and its one inline policy, no
        managed policy (not AmazonECSTaskExecutionRolePolicy)."""
        iam = self.clients(ACCOUNT)("iam")
        props = self.forensic.resources["CollectorTaskExecutionRole"]["Properties"]
        role = iam.get_role(RoleName="forensnap-collector-execution")["Role"]
        self.assertEqual(role["AssumeRolePolicyDocument"], props["AssumeRolePolicyDocument"])
        self.assertEqual(role["MaxSessionDuration"], 3600)
        stored = iam.get_role_policy(RoleName="forensnap-collector-execution", PolicyName="pull-image-write-logs")
        self.assertEqual(stored["PolicyDocument"], props["Policies"][0]["PolicyDocument"])
        self.assertEqual(iam.list_role_policies(RoleName="forensnap-collector-execution")["PolicyNames"],
                         ["pull-image-write-logs"])
        self.assertEqual(iam.list_attached_role_policies(RoleName="forensnap-collector-execution")["AttachedPolicies"], [])
        # Not an instance profile's role, and the collector role stays the only one with forensnap's grants.
        self.assertEqual(iam.list_instance_profiles_for_role(RoleName="forensnap-collector-execution")["InstanceProfiles"], [])

    def test_queue_policy_and_table_round_trip(self):
        client = self.clients(ACCOUNT)
        sqs, ddb = client("sqs"), client("dynamodb")
        policy = self.forensic.resources["RequestQueuePolicy"]["Properties"]["PolicyDocument"]
        for output in ("RequestQueueUrl", "RequestDeadLetterQueueUrl"):
            attributes = sqs.get_queue_attributes(QueueUrl=self.forensic.outputs[output], AttributeNames=["All"])["Attributes"]
            self.assertEqual(json.loads(attributes["Policy"]), policy)
            self.assertEqual(attributes["KmsMasterKeyId"], self.forensic.physical["EvidenceKey"]["KeyId"])
        table = ddb.describe_table(TableName="forensnap-cases")["Table"]
        self.assertEqual(table["TableArn"], self.forensic.outputs["CaseTableArn"])
        self.assertTrue(table["DeletionProtectionEnabled"])

    def test_intake_bus_and_rules_round_trip(self):
        events = self.clients(ACCOUNT)("events")
        outputs = self.forensic.outputs
        self.assertEqual(outputs["IntakeEventBusName"], "forensnap-intake")
        self.assertEqual(outputs["IntakeEventBusArn"], f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/forensnap-intake")
        # No EventSourceAccountIds: no bus policy.
        self.assertNotIn("Policy", events.describe_event_bus(Name="forensnap-intake"))
        for lid in ("GuardDutyFindingsRule", "SecurityHubCustomActionRule"):
            with self.subTest(rule=lid):
                props = self.forensic.resources[lid]["Properties"]
                rule = events.describe_rule(Name=props["Name"], EventBusName="forensnap-intake")
                self.assertEqual(rule["Arn"], self.forensic.physical[lid]["Arn"])
                self.assertEqual(json.loads(rule["EventPattern"]), props["EventPattern"])
                self.assertEqual(rule["State"], "ENABLED")
                targets = events.list_targets_by_rule(Rule=props["Name"], EventBusName="forensnap-intake")["Targets"]
                self.assertEqual(targets, [{"Id": "request-queue", "Arn": self.forensic.outputs["RequestQueueArn"]}])

    def test_member_role_policies_round_trip(self):
        for account, deployment_params, condition_keys in (
            (MEMBERS[0], self.member_params, {"StringEquals", "Null"}),
            (MEMBERS[1], {**self.member_params, "RequireSourceIdentity": "false"}, {"StringEquals"}),
        ):
            with self.subTest(account=account):
                template = t.load_template(t.MEMBER_TEMPLATE)
                physical = t.physical_ids(template, deployment_params, account, REGION)
                props = t.resolve(template, deployment_params, account, REGION, physical)["CollectorRole"]["Properties"]
                iam = self.clients(account)("iam")
                role = iam.get_role(RoleName="ForensnapCollector")["Role"]
                self.assertEqual(role["AssumeRolePolicyDocument"], props["AssumeRolePolicyDocument"])
                self.assertEqual(set(role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]), condition_keys)
                self.assertEqual(role["MaxSessionDuration"], 3600)
                for policy in props["Policies"]:
                    stored = iam.get_role_policy(RoleName="ForensnapCollector", PolicyName=policy["PolicyName"])
                    self.assertEqual(stored["PolicyDocument"], policy["PolicyDocument"])
                self.assertEqual(iam.list_role_policies(RoleName="ForensnapCollector")["PolicyNames"],
                                 [p["PolicyName"] for p in props["Policies"]])
                self.assertEqual(iam.list_attached_role_policies(RoleName="ForensnapCollector")["AttachedPolicies"], [])

    def test_member_trust_is_in_force(self):
        """The world's STS checks the deployed trust policy: only the collector role, not the
        forensic account's root, may assume the member role."""
        from botocore.exceptions import ClientError

        sts = self.clients(ACCOUNT)("sts")
        with self.assertRaises(ClientError) as caught:
            sts.assume_role(RoleArn=self.member.outputs["RoleArn"], RoleSessionName="case-1",
                            ExternalId=EXTERNAL_ID, SourceIdentity="case-1")
        self.assertEqual(caught.exception.response["Error"]["Code"], "AccessDenied")

if __name__ == "__main__":
    unittest.main()
