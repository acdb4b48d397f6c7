"""forensnap's CloudFormation templates, loaded, resolved and deployed into the local AWS world.

What this module owns:

* **Loading** (``load_template``): a ``yaml.SafeLoader`` subclass that understands CloudFormation's
  short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``, ``!Join``, ``!If``, ...) and turns them into
  the long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``). Timestamps stay strings, as in
  CloudFormation (``Version: 2012-10-17`` unquoted is the string, not a date).
* **Resolution** (``resolve``, ``resolve_outputs``): every intrinsic function replaced by its
  value, for given parameters, account, region and physical ids of the resources. Parameters
  are checked like CloudFormation checks them (no value and no default, AllowedPattern,
  AllowedValues, MinLength/MaxLength, MinValue/MaxValue). Anything that cannot be resolved
  raises ``TemplateError`` naming the logical id and the path, e.g.
  ``Resources.CollectorPolicy.Properties.PolicyDocument.Statement[5].Resource``.
* **Dependency order and physical ids** (``dependencies``, ``deploy_order``, ``physical_ids``):
  which resources a resource references, an order in which every resource comes after the ones
  it references, and the physical ids (``Ref`` plus ``GetAtt`` attributes) of resources that are
  created, or predictable from their names (a role's ARN from ``RoleName``, a log group's ARN
  from ``LogGroupName``, ...). ``placeholders=True`` also makes up deterministic ids for
  resources whose ids AWS picks (KMS keys, VPCs, subnets, ...): only for resolving a template
  without deploying it.
* **Deploying** (``deploy_template``, ``deploy_forensic``, ``deploy_member``, and
  ``deploy_member_stack_set`` for the member role in several accounts as a StackSet would): the
  resources forensnap's authorisation depends on, created through boto3 in the world (one client
  factory per account, as ``seed._clients`` builds them): IAM roles (trust policy, MaxSessionDuration,
  inline policies from ``Policies`` and ``AWS::IAM::RolePolicy``, managed policy attachments),
  instance profiles, KMS keys (exact key policy, KeySpec, KeyUsage, Description, tags,
  rotation) and aliases, S3 buckets (Object Lock, versioning, default retention, default
  encryption, public access block, ownership controls, lifecycle, tags) and bucket policies, SQS
  queues (redrive, visibility, long polling, KMS key) and queue policies, DynamoDB tables (keys,
  billing mode, SSE, point-in-time recovery), EventBridge buses (with their policy) and rules
  with their targets (moto then delivers matching events, see ``eventbridge``), SSM documents
  (content, type, format, tags: the member role's memory capture document, which the world's
  stand-in SSM agent runs, see ``ssm``). Every resource is created after the ones it
  references, so the collector role exists (trust policy only) before the key and bucket
  policies that name it, and its ``CollectorPolicy`` is put after the keys and the bucket. The
  collector service's task execution role (``CollectorImage`` set) is an IAM role like any other.

What it deliberately skips:

* ``AWS::EC2::*`` (VPC, subnets, route tables, security groups, VPC endpoints),
  ``AWS::Logs::LogGroup``, ``AWS::ECS::*`` (the collector service's cluster, task definition and
  service) and ``AWS::ECR::*`` (its image repository): they carry no policy forensnap's requests
  are evaluated against. VPC endpoint policies would, but the templates leave them at the
  default (full access) and the world does not model endpoints; the world runs no containers,
  and the repository has no repository policy (only the execution role, deployed, pulls from
  it). A skipped resource whose ids follow from its name (the log group's ARN, which the
  execution role's policy names; the repository's ARN and URI; the cluster's and the service's
  names) still resolves; outputs naming a skipped resource without a predictable id (``VpcId``,
  ``PrivateSubnetIds``, the security groups) are left out of the outputs and listed in
  ``Deployment.unresolved_outputs``.
* Properties the world has no API for at creation (``PendingWindowInDays`` of a key: it only
  matters for ScheduleKeyDeletion), settings the world refuses, and SQS attributes it does not
  keep (moto 5.2.5 drops ``RedriveAllowPolicy``) are recorded in ``Deployment.ignored``, never
  silently dropped.
* Stack semantics: updates, rollbacks, ``DeletionPolicy``/``UpdateReplacePolicy``, exports
  (``Fn::ImportValue`` reads a given ``imports`` mapping), custom resources, transforms.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parents[3]
FORENSIC_TEMPLATE = REPO / "forensic-vpc" / "forensic-account.yaml"
MEMBER_TEMPLATE = REPO / "forensic-vpc" / "member-role.yaml"


class TemplateError(Exception):
    """A template that cannot be loaded, resolved or deployed; the message names the path."""


# --- loading ----------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags; dates and times stay strings."""


CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

SHORT_FORMS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{name: f"Fn::{name}" for name in (
        "Sub", "GetAtt", "Join", "If", "Equals", "Not", "And", "Or", "Select", "Split",
        "FindInMap", "Base64", "ImportValue", "GetAZs", "Cidr", "Transform", "Length", "ToJsonString",
    )},
}


def _construct(loader: CfnLoader, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _short_form(long_name: str):
    def construct(loader: CfnLoader, node: yaml.Node):
        value = _construct(loader, node)
        if long_name == "Fn::GetAtt" and isinstance(value, str):
            lid, dot, attr = value.partition(".")
            if not dot:
                raise yaml.constructor.ConstructorError(
                    None, None, f"!GetAtt {value!r}: expected LogicalId.Attribute", node.start_mark)
            value = [lid, attr]
        if long_name in ("Ref", "Condition") and not isinstance(value, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"!{long_name} takes a name, not {value!r}", node.start_mark)
        return {long_name: value}
    return construct


for _short, _long in SHORT_FORMS.items():
    CfnLoader.add_constructor(f"!{_short}", _short_form(_long))


def load_template(source: str | Path) -> dict:
    """A template from a path (``Path`` or a string naming an existing file) or YAML/JSON text."""
    if isinstance(source, Path) or ("\n" not in source and Path(source).is_file()):
        where = str(source)
        text = Path(source).read_text()
    else:
        where, text = "<template>", source
    try:
        template = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise TemplateError(f"{where}: not a valid template: {err}") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{where}: a template needs a Resources mapping")
    return template


# --- resolution -------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self):
        return "AWS::NoValue"


NO_VALUE = _NoValue()
"""What ``Ref: AWS::NoValue`` resolves to inside the resolver; never in a result."""

_PSEUDO = ("AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName",
           "AWS::StackId", "AWS::NotificationARNs", "AWS::NoValue")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LIST_TYPES = ("CommaDelimitedList",)


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _is_list_type(kind: str) -> bool:
    return kind in _LIST_TYPES or kind.startswith("List<") or kind.startswith("AWS::SSM::Parameter::Value<List")


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_parameters(template: dict, parameters: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """Parameter values as ``Ref`` sees them: given or default, checked, lists split."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise TemplateError(f"Parameters: {', '.join(unknown)} not declared by the template")
    out: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        where = f"Parameters.{name}"
        kind = spec.get("Type", "String")
        if name in parameters:
            value = parameters[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"{where}: no value given and no Default")
        if _is_list_type(kind):
            items = value if isinstance(value, list) else [v.strip() for v in _scalar_text(value).split(",")]
            items = [_scalar_text(v) for v in items]
            for item in items:
                _check_parameter(where, spec, item)
            out[name] = items
        else:
            if isinstance(value, list):
                raise TemplateError(f"{where}: type {kind} takes one value, not a list")
            text = _scalar_text(value)
            _check_parameter(where, spec, text)
            if kind == "Number":
                try:
                    number = float(text)
                except ValueError:
                    raise TemplateError(f"{where}: {text!r} is not a Number") from None
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise TemplateError(f"{where}: {text} is below MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise TemplateError(f"{where}: {text} is above MaxValue {spec['MaxValue']}")
            out[name] = text
    return out


def _check_parameter(where: str, spec: dict, text: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and text not in [_scalar_text(v) for v in allowed]:
        raise TemplateError(f"{where}: {text!r} is not one of AllowedValues {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, text):
        raise TemplateError(f"{where}: {text!r} does not match AllowedPattern {pattern}")
    if "MinLength" in spec and len(text) < int(spec["MinLength"]):
        raise TemplateError(f"{where}: shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
        raise TemplateError(f"{where}: longer than MaxLength {spec['MaxLength']}")


class _Resolver:
    def __init__(self, template: dict, parameters: dict, account: str, region: str,
                 physical: dict[str, dict], stack_name: str, imports: dict | None = None):
        self.template = template
        self.resources = template.get("Resources") or {}
        self.params = resolve_parameters(template, parameters)
        self.account, self.region, self.stack_name = account, region, stack_name
        self.partition = partition_of(region)
        self.physical = physical
        self.imports = imports or {}
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # pseudo parameters, parameters and resources

    def pseudo(self, name: str):
        stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.account}/{self.region}/{self.stack_name}")
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:"
                            f"stack/{self.stack_name}/{stack_uuid}",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }[name]

    def ref(self, name, path: str):
        if not isinstance(name, str):
            raise TemplateError(f"{path}: Ref takes a name, not {name!r}")
        if name in _PSEUDO:
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            self.require_included(name, path)
            attrs = self.physical.get(name)
            if attrs is None or "Ref" not in attrs:
                raise TemplateError(f"{path}: Ref {name}: resource {name} has no physical id "
                                    "(not created yet and not predictable)")
            return attrs["Ref"]
        raise TemplateError(f"{path}: Ref {name}: no parameter, pseudo parameter or resource {name}")

    def getatt(self, lid, attr, path: str):
        if lid not in self.resources:
            raise TemplateError(f"{path}: GetAtt {lid}.{attr}: no resource {lid}")
        self.require_included(lid, path)
        attrs = self.physical.get(lid)
        if attrs is None:
            raise TemplateError(f"{path}: GetAtt {lid}.{attr}: resource {lid} has no physical id "
                                "(not created yet and not predictable)")
        if attr not in attrs:
            raise TemplateError(f"{path}: GetAtt {lid}.{attr}: resource {lid} has no attribute {attr} "
                                f"(known: {', '.join(sorted(k for k in attrs if k != 'Ref'))})")
        return attrs[attr]

    def require_included(self, lid: str, path: str) -> None:
        condition = self.resources[lid].get("Condition")
        if condition is not None and not self.condition(condition, f"Resources.{lid}.Condition"):
            raise TemplateError(f"{path}: {lid} is not created (its Condition {condition} is false)")

    # conditions

    def condition(self, name, path: str) -> bool:
        if not isinstance(name, str):
            raise TemplateError(f"{path}: a condition name, not {name!r}")
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"{path}: no condition {name} in Conditions")
        if name in self._evaluating:
            raise TemplateError(f"Conditions.{name}: refers to itself")
        self._evaluating.add(name)
        try:
            value = self.truth(conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        self._conditions[name] = value
        return value

    def truth(self, expr, path: str) -> bool:
        if isinstance(expr, bool):
            return expr
        if isinstance(expr, dict) and len(expr) == 1:
            (key, arg), = expr.items()
            if key == "Condition":
                return self.condition(arg, path)
            if key in ("Fn::And", "Fn::Or"):
                if not isinstance(arg, list) or not 2 <= len(arg) <= 10:
                    raise TemplateError(f"{path}: {key} takes a list of 2 to 10 conditions")
                values = [self.truth(a, f"{path}.{key}[{i}]") for i, a in enumerate(arg)]
                return all(values) if key == "Fn::And" else any(values)
            if key == "Fn::Not":
                if not isinstance(arg, list) or len(arg) != 1:
                    raise TemplateError(f"{path}: Fn::Not takes a list of one condition")
                return not self.truth(arg[0], f"{path}.Fn::Not[0]")
            if key == "Fn::Equals":
                if not isinstance(arg, list) or len(arg) != 2:
                    raise TemplateError(f"{path}: Fn::Equals takes a list of two values")
                a, b = (self.value(v, f"{path}.Fn::Equals[{i}]") for i, v in enumerate(arg))
                norm = lambda v: [_scalar_text(x) for x in v] if isinstance(v, list) else _scalar_text(v)  # noqa: E731
                return norm(a) == norm(b)
        raise TemplateError(f"{path}: not a condition: {expr!r}")

    # values

    def value(self, value, path: str):
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self.intrinsic(key, arg, path)
            out = {}
            for key, item in value.items():
                resolved = self.value(item, f"{path}.{key}")
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            out = []
            for i, item in enumerate(value):
                resolved = self.value(item, f"{path}[{i}]")
                if resolved is not NO_VALUE:
                    out.append(resolved)
            return out
        return value

    def intrinsic(self, key: str, arg, path: str):
        here = f"{path}.{key}"
        if key == "Ref":
            return self.ref(arg, path)
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"{path}: Fn::GetAtt takes [LogicalId, Attribute]")
            attr = self.value(arg[1], f"{here}[1]")
            return self.getatt(arg[0], attr, path)
        if key == "Fn::Sub":
            return self.sub(arg, path)
        if key == "Fn::Join":
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"{path}: Fn::Join takes [delimiter, list]")
            items = self.value(arg[1], f"{here}[1]")
            if not isinstance(items, list):
                raise TemplateError(f"{path}: Fn::Join needs a list, got {items!r}")
            return _scalar_text(arg[0]).join(self.text(v, f"{here}[1]") for v in items)
        if key == "Fn::If":
            if not isinstance(arg, list) or len(arg) != 3:
                raise TemplateError(f"{path}: Fn::If takes [condition, value if true, value if false]")
            chosen = 1 if self.condition(arg[0], f"{here}[0]") else 2
            return self.value(arg[chosen], f"{here}[{chosen}]")
        if key == "Fn::Select":
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"{path}: Fn::Select takes [index, list]")
            index = self.value(arg[0], f"{here}[0]")
            items = self.value(arg[1], f"{here}[1]")
            try:
                return items[int(index)]
            except (ValueError, TypeError, IndexError):
                raise TemplateError(f"{path}: Fn::Select index {index!r} out of {items!r}") from None
        if key == "Fn::Split":
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"{path}: Fn::Split takes [delimiter, string]")
            return self.text(self.value(arg[1], f"{here}[1]"), path).split(_scalar_text(arg[0]))
        if key == "Fn::FindInMap":
            if not isinstance(arg, list) or len(arg) not in (3, 4):
                raise TemplateError(f"{path}: Fn::FindInMap takes [map, top key, second key]")
            names = [self.text(self.value(v, f"{here}[{i}]"), path) for i, v in enumerate(arg[:3])]
            try:
                return copy.deepcopy((self.template.get("Mappings") or {})[names[0]][names[1]][names[2]])
            except KeyError:
                if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                    return self.value(arg[3]["DefaultValue"], f"{here}[3].DefaultValue")
                raise TemplateError(f"{path}: Fn::FindInMap: no Mappings.{'.'.join(names)}") from None
        if key == "Fn::Base64":
            return base64.b64encode(self.text(self.value(arg, here), path).encode()).decode()
        if key == "Fn::ImportValue":
            name = self.text(self.value(arg, here), path)
            if name not in self.imports:
                raise TemplateError(f"{path}: Fn::ImportValue {name}: no such export given")
            return self.imports[name]
        if key == "Fn::GetAZs":
            region = self.text(self.value(arg, here), path) or self.region
            return [f"{region}{zone}" for zone in "abc"]
        if key == "Fn::Cidr":
            if not isinstance(arg, list) or len(arg) != 3:
                raise TemplateError(f"{path}: Fn::Cidr takes [ipBlock, count, cidrBits]")
            block, count, bits = (self.value(v, f"{here}[{i}]") for i, v in enumerate(arg))
            try:
                network = ipaddress.ip_network(self.text(block, path), strict=False)
                subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
                return [str(next(subnets)) for _ in range(int(count))]
            except (ValueError, StopIteration) as err:
                raise TemplateError(f"{path}: Fn::Cidr {block}, {count}, {bits}: {err}") from None
        if key == "Fn::ToJsonString":
            return json.dumps(self.value(arg, here), separators=(",", ":"))
        if key == "Fn::Length":
            items = self.value(arg, here)
            if not isinstance(items, list):
                raise TemplateError(f"{path}: Fn::Length needs a list")
            return len(items)
        if key in ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not"):
            raise TemplateError(f"{path}: {key} is only allowed in Conditions and Fn::If")
        raise TemplateError(f"{path}: intrinsic function {key} is not supported")

    def text(self, value, path: str) -> str:
        if isinstance(value, (list, dict)) or value is NO_VALUE:
            raise TemplateError(f"{path}: expected a string, got {value!r}")
        return _scalar_text(value)

    def sub(self, arg, path: str):
        here = f"{path}.Fn::Sub"
        if isinstance(arg, str):
            pattern, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            pattern = arg[0]
            variables = {k: self.value(v, f"{here}[1].{k}") for k, v in arg[1].items()}
        else:
            raise TemplateError(f"{path}: Fn::Sub takes a string or [string, {{variables}}]")

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                lid, attr = name.split(".", 1)
                value = self.getatt(lid, attr, path)
            else:
                value = self.ref(name, path)
            if isinstance(value, (list, dict)) or value is NO_VALUE:
                raise TemplateError(f"{path}: Fn::Sub ${{{name}}} is not a string: {value!r}")
            return _scalar_text(value)

        return _SUB_VARIABLE.sub(replace, pattern)


def resolve(template: dict, parameters: dict[str, str | list[str]], account: str, region: str,
            physical: dict[str, dict], *, stack_name: str = "forensnap",
            only: list[str] | None = None, imports: dict | None = None) -> dict:
    """The template's Resources with every intrinsic function resolved.

    ``physical`` maps a logical id to its ``{"Ref": ..., "Arn": ..., <other attributes>}``
    (``physical_ids`` builds it). ``only`` resolves just those logical ids (a deployer resolving
    one resource at a time, in ``deploy_order``). Resources whose ``Condition`` is false are left
    out. Raises ``TemplateError`` naming the path of anything it cannot resolve.
    """
    ctx = _Resolver(template, parameters, account, region, physical, stack_name, imports)
    out = {}
    for lid in only if only is not None else list(ctx.resources):
        if lid not in ctx.resources:
            raise TemplateError(f"Resources.{lid}: no such resource")
        resource = ctx.resources[lid]
        condition = resource.get("Condition")
        if condition is not None and not ctx.condition(condition, f"Resources.{lid}.Condition"):
            continue
        resolved = {}
        for key, value in resource.items():
            if key in ("Properties", "Metadata"):
                value = ctx.value(value, f"Resources.{lid}.{key}")
            resolved[key] = value
        out[lid] = resolved
    return out


def resolve_outputs(template: dict, parameters: dict[str, str | list[str]], account: str, region: str,
                    physical: dict[str, dict], *, stack_name: str = "forensnap",
                    imports: dict | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(output name -> value, output name -> why it could not be resolved)."""
    ctx = _Resolver(template, parameters, account, region, physical, stack_name, imports)
    values, unresolved = {}, {}
    for name, output in (template.get("Outputs") or {}).items():
        condition = output.get("Condition")
        if condition is not None and not ctx.condition(condition, f"Outputs.{name}.Condition"):
            continue
        try:
            values[name] = ctx.value(output.get("Value"), f"Outputs.{name}.Value")
        except TemplateError as err:
            unresolved[name] = str(err)
    return values, unresolved


def evaluate_conditions(template: dict, parameters: dict[str, str | list[str]], account: str = "123456789012",
                        region: str = "us-east-1") -> dict[str, bool]:
    """Every condition of the template, evaluated."""
    ctx = _Resolver(template, parameters, account, region, {}, "forensnap")
    return {name: ctx.condition(name, f"Conditions.{name}") for name in template.get("Conditions") or {}}


# --- dependencies and physical ids ----------------------------------------------------------


def _references(value, resources: dict, found: set[str]) -> None:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                if arg in resources:
                    found.add(arg)
                return
            if key == "Fn::GetAtt":
                lid = arg.split(".", 1)[0] if isinstance(arg, str) else (arg[0] if arg else None)
                if lid in resources:
                    found.add(lid)
                return
            if key == "Fn::Sub":
                pattern, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                _references(variables, resources, found)
                for name in _SUB_VARIABLE.findall(pattern if isinstance(pattern, str) else ""):
                    if name.startswith("!") or name.strip() in variables:
                        continue
                    lid = name.strip().split(".", 1)[0]
                    if lid in resources:
                        found.add(lid)
                return
        for item in value.values():
            _references(item, resources, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, resources, found)


def dependencies(template: dict) -> dict[str, set[str]]:
    """Logical id -> the logical ids it references (Ref, GetAtt, Sub) or names in DependsOn."""
    resources = template.get("Resources") or {}
    out = {}
    for lid, resource in resources.items():
        found: set[str] = set()
        _references(resource.get("Properties") or {}, resources, found)
        depends = resource.get("DependsOn") or []
        for name in [depends] if isinstance(depends, str) else depends:
            if name not in resources:
                raise TemplateError(f"Resources.{lid}.DependsOn: no resource {name}")
            found.add(name)
        found.discard(lid)
        out[lid] = found
    return out


def deploy_order(template: dict) -> list[str]:
    """Every logical id after the ones it depends on; template order where free. Cycles raise."""
    deps = dependencies(template)
    order: list[str] = []
    placed: set[str] = set()
    pending = list(deps)
    while pending:
        ready = [lid for lid in pending if deps[lid] <= placed]
        if not ready:
            cycle = {lid: sorted(deps[lid] - placed) for lid in pending}
            raise TemplateError(f"Resources: dependency cycle among {cycle}")
        lid = ready[0]
        order.append(lid)
        placed.add(lid)
        pending.remove(lid)
    return order


_PLACEHOLDER_PREFIX = {
    "AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet", "AWS::EC2::RouteTable": "rtb",
    "AWS::EC2::SecurityGroup": "sg", "AWS::EC2::VPCEndpoint": "vpce",
    "AWS::EC2::SubnetRouteTableAssociation": "rtbassoc", "AWS::EC2::InternetGateway": "igw",
}


def _predict(ctx: _Resolver, lid: str, resource: dict, placeholders: bool) -> dict | None:
    """The physical ids of a resource that is not created, if its name decides them."""
    kind = resource.get("Type", "")
    props = resource.get("Properties") or {}
    p, account, region = ctx.partition, ctx.account, ctx.region
    suffix = ctx.pseudo("AWS::URLSuffix")
    digest = hashlib.sha256(f"{account}/{region}/{lid}".encode()).hexdigest()

    def name(prop: str):
        if prop in props:
            return ctx.text(ctx.value(props[prop], f"Resources.{lid}.Properties.{prop}"),
                            f"Resources.{lid}.Properties.{prop}")
        if placeholders:  # CloudFormation's generated names: <stack>-<logical id>-<random>
            return f"{ctx.stack_name}-{lid}-{digest[:12].upper()}"
        return None

    if kind == "AWS::S3::Bucket":
        n = name("BucketName")
        return n and {"Ref": n, "Arn": f"arn:{p}:s3:::{n}", "DomainName": f"{n}.s3.{suffix}",
                      "RegionalDomainName": f"{n}.s3.{region}.{suffix}"}
    if kind == "AWS::IAM::Role":
        n, path = name("RoleName"), props.get("Path", "/")
        return n and {"Ref": n, "Arn": f"arn:{p}:iam::{account}:role{path}{n}"}
    if kind == "AWS::IAM::InstanceProfile":
        n, path = name("InstanceProfileName"), props.get("Path", "/")
        return n and {"Ref": n, "Arn": f"arn:{p}:iam::{account}:instance-profile{path}{n}"}
    if kind == "AWS::IAM::ManagedPolicy":
        n, path = name("ManagedPolicyName"), props.get("Path", "/")
        return n and {"Ref": f"arn:{p}:iam::{account}:policy{path}{n}",
                      "PolicyArn": f"arn:{p}:iam::{account}:policy{path}{n}"}
    if kind == "AWS::KMS::Alias":
        n = name("AliasName")
        return n and {"Ref": n}
    if kind == "AWS::SQS::Queue":
        n = name("QueueName")
        return n and {"Ref": f"https://sqs.{region}.{suffix}/{account}/{n}",
                      "Arn": f"arn:{p}:sqs:{region}:{account}:{n}", "QueueName": n,
                      "QueueUrl": f"https://sqs.{region}.{suffix}/{account}/{n}"}
    if kind == "AWS::DynamoDB::Table":
        n = name("TableName")
        return n and {"Ref": n, "Arn": f"arn:{p}:dynamodb:{region}:{account}:table/{n}"}
    if kind == "AWS::Events::EventBus":
        n = name("Name")
        return n and {"Ref": n, "Name": n, "Arn": f"arn:{p}:events:{region}:{account}:event-bus/{n}"}
    if kind == "AWS::Events::Rule":
        n = name("Name")
        bus = ctx.text(ctx.value(props.get("EventBusName", "default"), f"Resources.{lid}.Properties.EventBusName"),
                       f"Resources.{lid}.Properties.EventBusName").rsplit("/", 1)[-1]
        scoped = "" if bus == "default" else f"{bus}/"
        return n and {"Ref": n if not scoped else f"{bus}|{n}",
                      "Arn": f"arn:{p}:events:{region}:{account}:rule/{scoped}{n}"}
    if kind == "AWS::SSM::Document":
        n = name("Name")
        return n and {"Ref": n}
    if kind == "AWS::Logs::LogGroup":
        n = name("LogGroupName")
        return n and {"Ref": n, "Arn": f"arn:{p}:logs:{region}:{account}:log-group:{n}:*"}
    if kind == "AWS::ECR::Repository":
        n = name("RepositoryName")
        return n and {"Ref": n, "Arn": f"arn:{p}:ecr:{region}:{account}:repository/{n}",
                      "RepositoryUri": f"{account}.dkr.ecr.{region}.{suffix}/{n}"}
    if kind == "AWS::ECS::Cluster":
        n = name("ClusterName")
        return n and {"Ref": n, "Arn": f"arn:{p}:ecs:{region}:{account}:cluster/{n}"}
    if kind == "AWS::ECS::Service" and "Cluster" in props:
        n = name("ServiceName")
        if not n:
            return None
        cluster = ctx.text(ctx.value(props["Cluster"], f"Resources.{lid}.Properties.Cluster"),
                           f"Resources.{lid}.Properties.Cluster").rsplit("/", 1)[-1]
        arn = f"arn:{p}:ecs:{region}:{account}:service/{cluster}/{n}"
        return {"Ref": arn, "ServiceArn": arn, "Name": n}
    if not placeholders:
        return None
    if kind == "AWS::KMS::Key":
        key_id = str(uuid.UUID(digest[:32]))
        return {"Ref": key_id, "KeyId": key_id, "Arn": f"arn:{p}:kms:{region}:{account}:key/{key_id}"}
    if kind in _PLACEHOLDER_PREFIX:
        ident = f"{_PLACEHOLDER_PREFIX[kind]}-0{digest[:16]}"
        extra = {"GroupId": ident, "VpcId": ident} if kind in ("AWS::EC2::SecurityGroup", "AWS::EC2::VPC") else {}
        if kind == "AWS::EC2::VPC":
            extra["CidrBlock"] = ctx.value(props.get("CidrBlock", ""), f"Resources.{lid}.Properties.CidrBlock")
        return {"Ref": ident, "Id": ident, **extra}
    return {"Ref": f"{ctx.stack_name}-{lid}-{digest[:12].upper()}"}


def physical_ids(template: dict, parameters: dict[str, str | list[str]], account: str, region: str,
                 created: dict[str, dict] | None = None, *, stack_name: str = "forensnap",
                 placeholders: bool = False) -> dict[str, dict]:
    """Physical ids of every resource that has them now: ``created`` as given, plus predictions.

    A resource not in ``created`` gets ids when its name decides them (``BucketName``,
    ``RoleName``, ``QueueName``, ``TableName``, ``LogGroupName``, ``AliasName``, an event bus's or
    rule's ``Name``, ...) and that
    name resolves with what is known so far. ``placeholders=True`` also invents deterministic
    ids for resources whose ids AWS would pick (KMS key ids, VPC ids, generated names): for
    resolving a template without deploying it, never for a world.
    """
    physical = {lid: dict(attrs) for lid, attrs in (created or {}).items()}
    ctx = _Resolver(template, parameters, account, region, physical, stack_name)
    for lid in deploy_order(template):
        if lid in physical:
            continue
        resource = ctx.resources[lid]
        condition = resource.get("Condition")
        if condition is not None and not ctx.condition(condition, f"Resources.{lid}.Condition"):
            continue
        try:
            predicted = _predict(ctx, lid, resource, placeholders)
        except TemplateError:
            predicted = None  # its name needs something not created yet
        if predicted:
            physical[lid] = predicted
    return physical


# --- deploying into the world ----------------------------------------------------------------


@dataclass
class Deployment:
    """What ``deploy_template`` did."""

    outputs: dict[str, Any]
    """The template's Outputs, resolved (those that could be)."""
    physical: dict[str, dict] = field(default_factory=dict)
    """Logical id -> physical ids (as created, or predicted from names for skipped resources)."""
    resources: dict[str, dict] = field(default_factory=dict)
    """Logical id -> the resolved resource, as it was deployed."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Logical id -> why it was not deployed."""
    ignored: dict[str, list[str]] = field(default_factory=dict)
    """Logical id -> properties (or settings) the world did not apply, with the reason."""
    unresolved_outputs: dict[str, str] = field(default_factory=dict)


_SKIPPED_TYPES = {
    "AWS::Logs::LogGroup": "no policy forensnap's requests are evaluated against",
}
_SKIP_PREFIXES = {
    "AWS::EC2::": "network resource: carries no policy forensnap's requests are evaluated against "
                  "(VPC endpoint policies are not modelled)",
    "AWS::ECS::": "container service: carries no policy forensnap's requests are evaluated against "
                  "(the world runs no containers; the task role is the collector role, deployed)",
    "AWS::ECR::": "image repository: carries no policy forensnap's requests are evaluated against "
                  "(no repository policy; ECS pulls with the execution role, deployed)",
}


def _tags(props: dict, key: str = "Key", value: str = "Value") -> list[dict]:
    return [{key: t["Key"], value: _scalar_text(t["Value"])} for t in props.get("Tags") or []]


def _normal(text: str):
    """An attribute value compared by meaning: JSON parsed, scalars as text."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return text
    return json.loads(json.dumps(value), parse_int=str, parse_float=str) if isinstance(value, (dict, list)) else text


def _policy_json(document) -> str:
    return json.dumps(document)


class _Deployer:
    def __init__(self, client: Callable[[str], Any], region: str, account: str, deployment: Deployment):
        self.client, self.region, self.account = client, region, account
        self.d = deployment

    def note(self, lid: str, what: str) -> None:
        self.d.ignored.setdefault(lid, []).append(what)

    def optional(self, lid: str, what: str, call: Callable[[], Any]) -> None:
        """A setting the world may refuse: record the refusal instead of failing the deploy."""
        from botocore.exceptions import ClientError

        try:
            call()
        except (ClientError, NotImplementedError) as err:
            self.note(lid, f"{what}: refused by the world: {err}")

    def unused(self, lid: str, props: dict, used: set[str]) -> None:
        for key in props:
            if key not in used:
                self.note(lid, f"{key}: not applied (no matching API in the world deployer)")

    # IAM

    def iam_role(self, lid, props):
        iam = self.client("iam")
        args = {"RoleName": props["RoleName"] if "RoleName" in props else self.d.physical.get(lid, {}).get("Ref"),
                "AssumeRolePolicyDocument": _policy_json(props["AssumeRolePolicyDocument"])}
        if not args["RoleName"]:
            raise TemplateError(f"Resources.{lid}.Properties.RoleName: needed in the world (no generated names)")
        for key in ("Path", "Description", "PermissionsBoundary"):
            if key in props:
                args[key] = props[key]
        if "MaxSessionDuration" in props:
            args["MaxSessionDuration"] = int(props["MaxSessionDuration"])
        if props.get("Tags"):
            args["Tags"] = _tags(props)
        role = iam.create_role(**args)["Role"]
        for policy in props.get("Policies") or []:
            iam.put_role_policy(RoleName=role["RoleName"], PolicyName=policy["PolicyName"],
                                PolicyDocument=_policy_json(policy["PolicyDocument"]))
        for arn in props.get("ManagedPolicyArns") or []:
            iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
        self.unused(lid, props, {"RoleName", "AssumeRolePolicyDocument", "Path", "Description",
                                 "PermissionsBoundary", "MaxSessionDuration", "Tags", "Policies",
                                 "ManagedPolicyArns"})
        return {"Ref": role["RoleName"], "Arn": role["Arn"], "RoleId": role["RoleId"]}

    def iam_role_policy(self, lid, props):
        self.client("iam").put_role_policy(RoleName=props["RoleName"], PolicyName=props["PolicyName"],
                                           PolicyDocument=_policy_json(props["PolicyDocument"]))
        self.unused(lid, props, {"RoleName", "PolicyName", "PolicyDocument"})
        return {"Ref": f"{props['RoleName']}|{props['PolicyName']}"}

    def iam_instance_profile(self, lid, props):
        iam = self.client("iam")
        args = {"InstanceProfileName": props["InstanceProfileName"]}
        if "Path" in props:
            args["Path"] = props["Path"]
        profile = iam.create_instance_profile(**args)["InstanceProfile"]
        for role in props.get("Roles") or []:
            iam.add_role_to_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=role)
        self.unused(lid, props, {"InstanceProfileName", "Path", "Roles"})
        return {"Ref": profile["InstanceProfileName"], "Arn": profile["Arn"]}

    # KMS

    def kms_key(self, lid, props):
        kms = self.client("kms")
        args = {"Policy": _policy_json(props["KeyPolicy"])}
        for key in ("Description", "KeySpec", "KeyUsage", "Origin"):
            if key in props:
                args[key] = props[key]
        if "MultiRegion" in props:
            args["MultiRegion"] = bool(props["MultiRegion"])
        if props.get("Tags"):
            args["Tags"] = _tags(props, "TagKey", "TagValue")
        meta = kms.create_key(**args)["KeyMetadata"]
        if props.get("EnableKeyRotation") in (True, "true"):
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        if props.get("Enabled") in (False, "false"):
            kms.disable_key(KeyId=meta["KeyId"])
        if "PendingWindowInDays" in props:
            self.note(lid, "PendingWindowInDays: applies only to ScheduleKeyDeletion, nothing to create")
        self.unused(lid, props, {"KeyPolicy", "Description", "KeySpec", "KeyUsage", "Origin", "MultiRegion",
                                 "Tags", "EnableKeyRotation", "Enabled", "PendingWindowInDays"})
        return {"Ref": meta["KeyId"], "KeyId": meta["KeyId"], "Arn": meta["Arn"]}

    def kms_alias(self, lid, props):
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        self.unused(lid, props, {"AliasName", "TargetKeyId"})
        return {"Ref": props["AliasName"]}

    # S3

    def s3_bucket(self, lid, props):
        s3 = self.client("s3")
        name = props.get("BucketName")
        if not name:
            raise TemplateError(f"Resources.{lid}.Properties.BucketName: needed in the world (no generated names)")
        args = {"Bucket": name}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        lock = props.get("ObjectLockEnabled") in (True, "true")
        if lock:
            args["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**args)
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={
                "Status": props["VersioningConfiguration"]["Status"]})
        if "ObjectLockConfiguration" in props:
            config = copy.deepcopy(props["ObjectLockConfiguration"])
            retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
            for unit in ("Days", "Years"):
                if unit in retention:
                    retention[unit] = int(retention[unit])
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=config)
        if "BucketEncryption" in props:
            rules = []
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
                out = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                if "BucketKeyEnabled" in rule:
                    out["BucketKeyEnabled"] = rule["BucketKeyEnabled"] in (True, "true")
                rules.append(out)
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            block = {k: v in (True, "true") for k, v in props["PublicAccessBlockConfiguration"].items()}
            self.optional(lid, "PublicAccessBlockConfiguration", lambda: s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=block))
        if "OwnershipControls" in props:
            self.optional(lid, "OwnershipControls", lambda: s3.put_bucket_ownership_controls(
                Bucket=name, OwnershipControls=props["OwnershipControls"]))
        if "LifecycleConfiguration" in props:
            rules = []
            for rule in props["LifecycleConfiguration"]["Rules"]:
                out = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
                if "Id" in rule:
                    out["ID"] = rule["Id"]
                if "AbortIncompleteMultipartUpload" in rule:
                    out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(
                        rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
                if "ExpirationInDays" in rule:
                    out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
                rules.append(out)
            self.optional(lid, "LifecycleConfiguration", lambda: s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": rules}))
        if props.get("Tags"):
            self.optional(lid, "Tags", lambda: s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)}))
        self.unused(lid, props, {"BucketName", "ObjectLockEnabled", "ObjectLockConfiguration",
                                 "VersioningConfiguration", "BucketEncryption", "PublicAccessBlockConfiguration",
                                 "OwnershipControls", "LifecycleConfiguration", "Tags"})
        suffix = "amazonaws.com"
        return {"Ref": name, "Arn": f"arn:{partition_of(self.region)}:s3:::{name}",
                "DomainName": f"{name}.s3.{suffix}", "RegionalDomainName": f"{name}.s3.{self.region}.{suffix}"}

    def s3_bucket_policy(self, lid, props):
        self.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=_policy_json(props["PolicyDocument"]))
        self.unused(lid, props, {"Bucket", "PolicyDocument"})
        return {"Ref": props["Bucket"]}

    # SQS

    _QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
                         "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "KmsMasterKeyId",
                         "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled", "FifoQueue",
                         "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")

    def sqs_queue(self, lid, props):
        sqs = self.client("sqs")
        attributes = {k: _scalar_text(props[k]) for k in self._QUEUE_ATTRIBUTES if k in props}
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                attributes[key] = props[key] if isinstance(props[key], str) else json.dumps(props[key])
        args = {"QueueName": props["QueueName"], "Attributes": attributes}
        if props.get("Tags"):
            args["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
        url = sqs.create_queue(**args)["QueueUrl"]
        kept = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for key, value in attributes.items():
            if key not in kept:
                self.note(lid, f"{key}: not kept by the world (absent from GetQueueAttributes All)")
            elif _normal(kept[key]) != _normal(value):
                self.note(lid, f"{key}: the world keeps {kept[key]!r}, not {value!r}")
        arn = kept["QueueArn"]
        self.unused(lid, props, {"QueueName", "Tags", "RedrivePolicy", "RedriveAllowPolicy", *self._QUEUE_ATTRIBUTES})
        return {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": props["QueueName"]}

    def sqs_queue_policy(self, lid, props):
        sqs = self.client("sqs")
        for url in props["Queues"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": _policy_json(props["PolicyDocument"])})
        self.unused(lid, props, {"Queues", "PolicyDocument"})
        return {"Ref": ",".join(props["Queues"])}

    # DynamoDB

    def dynamodb_table(self, lid, props):
        ddb = self.client("dynamodb")
        args = {"TableName": props["TableName"], "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"], "BillingMode": props.get("BillingMode", "PROVISIONED")}
        if "ProvisionedThroughput" in props:
            args["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            spec = {"Enabled": sse.get("SSEEnabled") in (True, "true")}
            if "SSEType" in sse:
                spec["SSEType"] = sse["SSEType"]
            if "KMSMasterKeyId" in sse:
                spec["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            args["SSESpecification"] = spec
        if "DeletionProtectionEnabled" in props:
            args["DeletionProtectionEnabled"] = props["DeletionProtectionEnabled"] in (True, "true")
        if props.get("Tags"):
            args["Tags"] = _tags(props)
        table = ddb.create_table(**args)["TableDescription"]
        pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        if pitr is not None:
            self.optional(lid, "PointInTimeRecoverySpecification", lambda: ddb.update_continuous_backups(
                TableName=props["TableName"],
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": pitr in (True, "true")}))
        self.unused(lid, props, {"TableName", "AttributeDefinitions", "KeySchema", "BillingMode",
                                 "ProvisionedThroughput", "SSESpecification", "DeletionProtectionEnabled", "Tags",
                                 "PointInTimeRecoverySpecification"})
        return {"Ref": table["TableName"], "Arn": table["TableArn"]}


    # EventBridge

    def events_event_bus(self, lid, props):
        events = self.client("events")
        name = props["Name"]
        args = {"Name": name}
        if "Description" in props:
            args["Description"] = props["Description"]
        if props.get("Tags"):
            args["Tags"] = _tags(props)
        arn = events.create_event_bus(**args)["EventBusArn"]
        attrs = {"Ref": name, "Name": name, "Arn": arn}
        if "Policy" in props:
            policy = props["Policy"] if isinstance(props["Policy"], dict) else json.loads(props["Policy"])
            statements = policy.get("Statement", [])
            for statement in [statements] if isinstance(statements, dict) else statements:
                if not statement.get("Sid"):
                    # EventBridge keeps a bus policy as statements keyed by Sid.
                    raise TemplateError(f"Resources.{lid}.Properties.Policy: every statement needs a Sid")
            events.put_permission(EventBusName=name, Policy=_policy_json(policy))
            kept = json.loads(events.describe_event_bus(Name=name).get("Policy") or "{}")
            if kept.get("Statement") != ([statements] if isinstance(statements, dict) else statements):
                self.note(lid, f"Policy: the world keeps {kept!r}")
            attrs["Policy"] = policy
        self.unused(lid, props, {"Name", "Description", "Tags", "Policy"})
        return attrs

    def events_rule(self, lid, props):
        events = self.client("events")
        name = props.get("Name")
        if not name:
            raise TemplateError(f"Resources.{lid}.Properties.Name: needed in the world (no generated names)")
        bus = props.get("EventBusName", "default")
        args = {"Name": name, "EventBusName": bus, "State": props.get("State", "ENABLED")}
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        for key in ("ScheduleExpression", "Description", "RoleArn"):
            if key in props:
                args[key] = props[key]
        arn = events.put_rule(**args)["RuleArn"]
        targets = []
        for target in props.get("Targets") or []:
            out = {k: target[k] for k in ("Id", "Arn", "Input", "InputPath", "RoleArn", "SqsParameters",
                                          "DeadLetterConfig", "InputTransformer") if k in target}
            if "RetryPolicy" in target:
                out["RetryPolicy"] = {k: int(v) for k, v in target["RetryPolicy"].items()}
            unknown = set(target) - set(out) - {"RetryPolicy"}
            if unknown:
                self.note(lid, f"Targets[{target.get('Id')}]: {sorted(unknown)} not applied")
            targets.append(out)
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self.unused(lid, props, {"Name", "EventBusName", "State", "EventPattern", "ScheduleExpression",
                                 "Description", "RoleArn", "Targets"})
        bus_name = bus.rsplit("/", 1)[-1]
        return {"Ref": name if bus_name == "default" else f"{bus_name}|{name}", "Arn": arn}


    # SSM

    def ssm_document(self, lid, props):
        """A document whose content is exactly the template's (CloudFormation sends a ``Content``
        object as JSON). ``UpdateMethod`` only decides how a stack update changes the document."""
        ssm = self.client("ssm")
        name = props.get("Name")
        if not name:
            raise TemplateError(f"Resources.{lid}.Properties.Name: needed in the world (no generated names)")
        content = props["Content"]
        fmt = props.get("DocumentFormat", "JSON")
        if not isinstance(content, str):
            content = json.dumps(content) if fmt == "JSON" else yaml.safe_dump(content, sort_keys=False)
        args = {"Name": name, "Content": content, "DocumentType": props.get("DocumentType", "Command"),
                "DocumentFormat": fmt}
        for key in ("TargetType", "VersionName"):
            if key in props:
                args[key] = props[key]
        if props.get("Tags"):
            args["Tags"] = _tags(props)
        ssm.create_document(**args)
        if "UpdateMethod" in props:
            self.note(lid, "UpdateMethod: applies only to stack updates, nothing to create")
        self.unused(lid, props, {"Name", "Content", "DocumentType", "DocumentFormat", "TargetType", "VersionName",
                                 "Tags", "UpdateMethod"})
        return {"Ref": name}


_HANDLERS = {
    "AWS::IAM::Role": _Deployer.iam_role,
    "AWS::IAM::RolePolicy": _Deployer.iam_role_policy,
    "AWS::IAM::InstanceProfile": _Deployer.iam_instance_profile,
    "AWS::KMS::Key": _Deployer.kms_key,
    "AWS::KMS::Alias": _Deployer.kms_alias,
    "AWS::S3::Bucket": _Deployer.s3_bucket,
    "AWS::S3::BucketPolicy": _Deployer.s3_bucket_policy,
    "AWS::SQS::Queue": _Deployer.sqs_queue,
    "AWS::SQS::QueuePolicy": _Deployer.sqs_queue_policy,
    "AWS::DynamoDB::Table": _Deployer.dynamodb_table,
    "AWS::Events::EventBus": _Deployer.events_event_bus,
    "AWS::Events::Rule": _Deployer.events_rule,
    "AWS::SSM::Document": _Deployer.ssm_document,
}


def _skip_reason(kind: str) -> str | None:
    if kind in _SKIPPED_TYPES:
        return _SKIPPED_TYPES[kind]
    for prefix, reason in _SKIP_PREFIXES.items():
        if kind.startswith(prefix):
            return reason
    if kind not in _HANDLERS:
        return f"{kind}: not deployed into the world"
    return None


def deploy_template(template: dict, client: Callable[[str], Any], region: str, account: str,
                    parameters: dict[str, str | list[str]], *, stack_name: str = "forensnap") -> Deployment:
    """Create the template's policy-bearing resources through ``client(service)`` (a boto3 client
    factory acting in ``account``, like ``seed._clients``), each after the ones it references."""
    deployment = Deployment(outputs={})
    deployer = _Deployer(client, region, account, deployment)
    resources = template.get("Resources") or {}
    for lid in deploy_order(template):
        reason = _skip_reason(resources[lid].get("Type", ""))
        physical = physical_ids(template, parameters, account, region, deployment.physical, stack_name=stack_name)
        if reason:
            deployment.skipped[lid] = reason
            if lid in physical:
                deployment.physical[lid] = physical[lid]  # predicted from its name
            continue
        resolved = resolve(template, parameters, account, region, physical, stack_name=stack_name, only=[lid])
        if lid not in resolved:
            deployment.skipped[lid] = "its Condition is false"
            continue
        resource = resolved[lid]
        deployment.resources[lid] = resource
        deployment.physical[lid] = _HANDLERS[resource["Type"]](deployer, lid, resource.get("Properties") or {})
    deployment.outputs, deployment.unresolved_outputs = resolve_outputs(
        template, parameters, account, region, deployment.physical, stack_name=stack_name)
    return deployment


def world_clients(endpoint: str, region: str, account: str) -> Callable[[str], Any]:
    """boto3 clients acting in ``account`` of the world at ``endpoint`` (seed's own factory)."""
    from ..seed import _clients

    return _clients(endpoint, region, account)


def deploy(template_path: str | Path, endpoint: str, region: str, account: str,
           parameters: dict[str, str | list[str]], *, stack_name: str = "forensnap",
           client: Callable[[str], Any] | None = None) -> Deployment:
    """``deploy_template`` of the template at ``template_path`` into the world at ``endpoint``."""
    return deploy_template(load_template(Path(template_path)), client or world_clients(endpoint, region, account),
                           region, account, parameters, stack_name=stack_name)


def deploy_forensic(endpoint: str, region: str, account: str, parameters: dict[str, str | list[str]], *,
                    stack_name: str = "forensnap-forensic", client: Callable[[str], Any] | None = None,
                    template_path: str | Path = FORENSIC_TEMPLATE) -> dict[str, Any]:
    """Deploy ``forensic-account.yaml`` (keys, aliases, evidence bucket and its policy, collector
    role, its policy and instance profile, queues, case table, intake bus and rules, and with
    ``CollectorImage`` the service's task execution role); return its resolved Outputs."""
    return deploy(template_path, endpoint, region, account, parameters, stack_name=stack_name, client=client).outputs


def deploy_member(endpoint: str, region: str, account: str, parameters: dict[str, str | list[str]], *,
                  stack_name: str = "forensnap-member", client: Callable[[str], Any] | None = None,
                  template_path: str | Path = MEMBER_TEMPLATE) -> dict[str, Any]:
    """Deploy ``member-role.yaml`` (the member collector role, trust and inline policy, and the
    memory capture document ForensnapCaptureMemory); return its resolved Outputs (RoleArn,
    RoleName, AccountId)."""
    return deploy(template_path, endpoint, region, account, parameters, stack_name=stack_name, client=client).outputs


def stack_instance_name(stack_set_name: str, account: str, region: str) -> str:
    """A name of the shape CloudFormation gives the stack behind a StackSet's stack instance,
    ``StackSet-<name>-<uuid>`` (stack instances:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-concepts.html); the
    uuid here is derived from the account and region, so it is stable. member-role.yaml uses
    neither ``AWS::StackName`` nor ``AWS::StackId``, so the name changes nothing it creates."""
    return f"StackSet-{stack_set_name}-{uuid.uuid5(uuid.NAMESPACE_URL, f'{account}/{region}/{stack_set_name}')}"


def deploy_member_stack_set(endpoint: str, region: str, accounts: list[str],
                            parameters: dict[str, str | list[str]], *,
                            stack_set_name: str = "forensnap-member-role",
                            template_path: str | Path = MEMBER_TEMPLATE,
                            client_for: Callable[[str], Callable[[str], Any]] | None = None,
                            ) -> dict[str, Deployment]:
    """``member-role.yaml`` deployed as a StackSet deploys it across an organisation: one stack
    instance per account, in one region (the stack holds only an IAM role, which is global), the
    same template body and the same parameters everywhere (a StackSet's parameters, no
    per-account overrides: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stackinstances-override.html
    says overrides are optional, and forensnap needs none). Each instance resolves
    ``AWS::AccountId`` to its own account, as CloudFormation does in the target account.

    ``client_for(account)`` gives the boto3 client factory acting in that account (the world's
    own by default). Returns account -> the instance's :class:`Deployment`, in ``accounts`` order.
    An account listed twice or not of 12 digits raises :class:`TemplateError`, as
    ``CreateStackInstances`` refuses such targets."""
    seen: set[str] = set()
    for account in accounts:
        if not re.fullmatch(r"\d{12}", account):
            raise TemplateError(f"StackSet {stack_set_name}: {account!r} is not a 12-digit account id")
        if account in seen:
            raise TemplateError(f"StackSet {stack_set_name}: account {account} is listed twice")
        seen.add(account)
    template = load_template(Path(template_path))
    deployments: dict[str, Deployment] = {}
    for account in accounts:
        client = client_for(account) if client_for else world_clients(endpoint, region, account)
        deployments[account] = deploy_template(
            template, client, region, account, dict(parameters),
            stack_name=stack_instance_name(stack_set_name, account, region))
    return deployments
