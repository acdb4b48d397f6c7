"""IAM authorisation of one request, decided the way AWS documents it.

This module owns the decision only: given the caller, the action, the resource, the request
context, the caller's identity policies and the resource's policy, :func:`evaluate` answers
allowed or not and names the deciding statement. Finding the policies and the context of a real
request is :mod:`.authorize`'s job.

It follows AWS's documented evaluation logic, and each rule below cites the page it comes from:

* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
* https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html

Not modelled: SCPs/RCPs, permissions boundaries, session policies, KMS grants, policy variables
(``${aws:username}``: a policy using one raises :class:`PolicyError` rather than being
misread). Anything the evaluator does not understand raises :class:`PolicyError`; it never
guesses an answer.
"""

from __future__ import annotations

import base64
import datetime
import enum
import functools
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Decision", "PolicyError", "Request", "ResourcePolicyKind", "evaluate"]


class PolicyError(ValueError):
    """A policy the evaluator cannot read faithfully (unknown operator, malformed element)."""


@dataclass(frozen=True)
class Request:
    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, object] = field(default_factory=dict)
    resource_account: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    deciding: str | None = None


class ResourcePolicyKind(enum.Enum):
    OPTIONAL = "optional"
    """S3 bucket policy, SQS queue policy: same-account access needs identity OR resource allow."""
    KEY_POLICY = "key policy"
    """KMS key policy: required; naming the account delegates to IAM policies."""
    TRUST_POLICY = "trust policy"
    """Role trust policy: required; naming the account delegates to IAM policies."""


# --- principals -----------------------------------------------------------------------------------

_ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class _Caller:
    arn: str
    kind: str  # "user", "role", "session", "root", "service", "other"
    account: str | None
    role_arn: str | None = None  # the role of a session (or the role itself)


def _parse_caller(arn: str) -> _Caller:
    if not arn.startswith("arn:"):
        # A service principal (ec2.amazonaws.com) has no account and no identity policies.
        return _Caller(arn, "service", None)
    parts = arn.split(":", 5)
    if len(parts) != 6 or not _ACCOUNT_ID.match(parts[4]):
        raise PolicyError(f"cannot read the caller ARN {arn!r}")
    _, partition, service, _, account, resource = parts
    if service == "iam":
        if resource == "root":
            return _Caller(arn, "root", account)
        if resource.startswith("user/"):
            return _Caller(arn, "user", account)
        if resource.startswith("role/"):
            return _Caller(arn, "role", account, arn)
    if service == "sts" and resource.startswith("assumed-role/"):
        pieces = resource.split("/")
        if len(pieces) != 3:
            raise PolicyError(f"cannot read the role session ARN {arn!r}")
        # The session ARN loses the role's path; AWS's own aws:PrincipalArn for a session is the
        # role ARN, which this evaluator can only rebuild without the path.
        role_arn = f"arn:{partition}:iam::{account}:role/{pieces[1]}"
        return _Caller(arn, "session", account, role_arn)
    return _Caller(arn, "other", account)


def _role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def _principal_entries(value, label: str) -> list[tuple[str, str]]:
    if value == "*":
        return [("AWS", "*")]
    if not isinstance(value, Mapping):
        raise PolicyError(f"{label}: Principal must be \"*\" or an object, not {value!r}")
    entries = []
    for kind, names in value.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise PolicyError(f"{label}: unknown principal type {kind!r}")
        for name in names if isinstance(names, list) else [names]:
            if not isinstance(name, str):
                raise PolicyError(f"{label}: principal {name!r} is not a string")
            entries.append((kind, name))
    return entries


DIRECT = "direct"
ACCOUNT = "account"


def _match_entry(kind: str, name: str, caller: _Caller) -> str | None:
    """How one Principal entry names the caller: DIRECT, ACCOUNT (delegation), or None."""
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    if kind == "AWS" and name == "*":
        # "Principal": "*" and {"AWS": "*"} are documented as equivalent: everyone.
        return DIRECT
    if kind == "Service":
        return DIRECT if caller.kind == "service" and name.lower() == caller.arn.lower() else None
    if kind == "Federated":
        return DIRECT if name == caller.arn else None
    if kind == "CanonicalUser":
        return None  # S3 canonical ids are not a principal this world issues.
    if caller.account is None:
        return None
    if _ACCOUNT_ID.match(name):
        # "When you specify an AWS account, you can use the account ARN (arn:aws:iam::
        # account-ID:root), or a shortened form that consists of the "AWS": prefix followed by the
        # account ID." It names the account, so it delegates to the account's IAM policies.
        return ACCOUNT if name == caller.account else None
    parts = name.split(":", 5)
    if len(parts) != 6:
        raise PolicyError(f"principal {name!r} is neither an account id nor an ARN")
    service, account, resource = parts[2], parts[4], parts[5]
    if service == "iam" and resource == "root":
        return ACCOUNT if account == caller.account else None
    if service == "iam" and resource.startswith("role/"):
        # A role principal covers every session of that role ("Role sessions" in the Principal
        # page: the role ARN, not the session ARN, is what a policy names to cover the sessions).
        if caller.role_arn is None or account != caller.account:
            return None
        return DIRECT if _role_name(resource) == _role_name(caller.role_arn) else None
    return DIRECT if name == caller.arn else None


def _principal_match(entries: list[tuple[str, str]], caller: _Caller) -> str | None:
    found = [_match_entry(kind, name, caller) for kind, name in entries]
    if DIRECT in found:
        return DIRECT
    return ACCOUNT if ACCOUNT in found else None


def _not_principal_excludes(entries: list[tuple[str, str]], caller: _Caller) -> bool:
    """Whether a NotPrincipal list exempts the caller from its Deny.

    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
    "If evaluating an assumed-role user, AWS might verify the account first, then the role, and
    then the assumed-role user." So the caller is exempt only when every level of that chain is
    listed: a Deny/NotPrincipal naming only a role still denies its sessions unless the account
    is listed too (the page's own examples list the account ARN alongside the role).
    """
    def names_role(name: str) -> bool:
        return ":role/" in name and _match_entry("AWS", name, caller) == DIRECT

    def listed(level: str, value: str) -> bool:
        for kind, name in entries:
            if kind == "AWS" and name == "*":
                return True
            if level == "service":
                if kind == "Service" and name.lower() == value.lower():
                    return True
            elif kind != "AWS":
                continue
            elif level == "account":
                if name == value or name.endswith(f":iam::{value}:root"):
                    return True
            elif level == "role":
                if names_role(name):
                    return True
            elif level == "session":
                # The page recommends "the ARN for the role and the ARN for the account containing
                # that role", so the role ARN also stands for its sessions at this level.
                if name == value or names_role(name):
                    return True
            elif name == value:
                return True
        return False

    if caller.kind == "service":
        return listed("service", caller.arn)
    chain = [("account", caller.account)]
    if caller.kind == "session":
        chain += [("role", caller.role_arn), ("session", caller.arn)]
    elif caller.kind == "role":
        chain += [("role", caller.arn)]
    elif caller.kind != "root":
        chain += [("entity", caller.arn)]
    return all(listed(level, value) for level, value in chain)


# --- wildcards ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern:
    # IAM wildcards are only * (any run, including empty) and ? (one character); unlike fnmatch,
    # brackets are literal.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    # ArnLike/ArnEquals: "Each of the six colon-delimited components of the ARN is checked
    # separately and each can include multi-character match wildcards (*) or single-character
    # match wildcards (?)." (condition operators page, ARN section). The sixth component (the
    # resource) keeps its own colons.
    if pattern == "*":
        return True
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) == 6 and len(v_parts) == 6:
        return all(_like(p, v) for p, v in zip(p_parts, v_parts))
    if len(p_parts) < 6 and len(v_parts) < 6:
        return _like(pattern, value)  # neither is an ARN: plain wildcard match
    return False  # a pattern that is not a whole ARN cannot stand for one, nor the reverse


def _action_matches(pattern: str, action: str) -> bool:
    # Action names are case-insensitive ("iam:listaccesskeys" equals "IAM:ListAccessKeys",
    # reference_policies_elements_action.html).
    return _like(pattern, action, ignore_case=True)


# --- conditions -----------------------------------------------------------------------------------


def _as_str(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _date(value) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    elif isinstance(value, str):
        # Date operators accept "ISO 8601 date formats or new epoch (UNIX) time".
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _policy_value(convert, raw, operator: str, label: str):
    converted = convert(raw)
    if converted is None:
        raise PolicyError(f"{label}: {operator} cannot use the policy value {raw!r}")
    return converted


def _cmp_factory(parse, compare):
    def prepare(raw, operator, label):
        return _policy_value(parse, raw, operator, label)

    def match(request_value, policy_value):
        value = parse(request_value)
        # A request value of the wrong type matches nothing (so a positive operator is false).
        return value is not None and compare(value, policy_value)

    return prepare, match


def _str_prepare(raw, operator, label):
    if "${" in _as_str(raw):
        raise PolicyError(f"{label}: policy variables are not supported ({raw!r} in {operator})")
    return _as_str(raw)


def _bool_prepare(raw, operator, label):
    text = _as_str(raw).lower()
    if text not in ("true", "false"):
        raise PolicyError(f"{label}: Bool needs \"true\" or \"false\", not {raw!r}")
    return text


def _ip_prepare(raw, operator, label):
    try:
        return ipaddress.ip_network(_as_str(raw), strict=False)
    except ValueError:
        raise PolicyError(f"{label}: {operator} cannot use the address {raw!r}") from None


def _ip_match(request_value, network) -> bool:
    try:
        address = ipaddress.ip_address(_as_str(request_value))
    except ValueError:
        return False
    return address.version == network.version and address in network


_EQ = lambda a, b: a == b  # noqa: E731
_FAMILIES = {
    # name: (prepare policy value, match request value against it)
    "string": (_str_prepare, lambda v, p: _as_str(v) == p),
    "string_ic": (_str_prepare, lambda v, p: _as_str(v).lower() == p.lower()),
    "string_like": (_str_prepare, lambda v, p: _like(p, _as_str(v))),
    "bool": (_bool_prepare, lambda v, p: _as_str(v).lower() == p),
    "binary": (_str_prepare, lambda v, p: _as_str(v) == p),
    "ip": (_ip_prepare, _ip_match),
    "arn": (_str_prepare, lambda v, p: _arn_like(p, _as_str(v))),
}
for _name, _op in (("eq", _EQ), ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b),
                   ("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b)):
    _FAMILIES["num_" + _name] = _cmp_factory(_number, _op)
    _FAMILIES["date_" + _name] = _cmp_factory(_date, _op)

# operator -> (family, negated). Negated operators are the ones AWS documents as true when the key
# is absent ("If the policy condition requires that the key is not matched, such as StringNotLike
# or ArnNotLike, and the right key is not present, the condition is true.").
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ic", False),
    "StringNotEqualsIgnoreCase": ("string_ic", True),
    "StringLike": ("string_like", False),
    "StringNotLike": ("string_like", True),
    "NumericEquals": ("num_eq", False),
    "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False),
    "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False),
    "NumericGreaterThanEquals": ("num_ge", False),
    "DateEquals": ("date_eq", False),
    "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False),
    "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False),
    "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
}
_OPERATORS_LOWER = {name.lower(): name for name in _OPERATORS}

_ABSENT = object()


@dataclass(frozen=True)
class _Clause:
    operator: str       # as written in the policy, for messages
    key: str            # lower-cased: condition key names are case-insensitive
    family: str | None  # None for Null
    negated: bool
    qualifier: str | None  # "forallvalues", "foranyvalue" or None
    if_exists: bool
    values: tuple


def _compile_conditions(condition, label: str) -> list[_Clause]:
    if condition is None:
        return []
    if not isinstance(condition, Mapping):
        raise PolicyError(f"{label}: Condition must be an object")
    clauses = []
    for written, block in condition.items():
        qualifier, rest = None, written
        if ":" in written:
            prefix, rest = written.split(":", 1)
            qualifier = prefix.lower()
            if qualifier not in ("forallvalues", "foranyvalue"):
                raise PolicyError(f"{label}: unsupported condition operator {written!r}")
        if_exists = rest.lower().endswith("ifexists") and rest.lower() != "ifexists"
        base = rest[: -len("IfExists")] if if_exists else rest
        if not isinstance(block, Mapping):
            raise PolicyError(f"{label}: {written} must map condition keys to values")
        if base.lower() == "null":
            if qualifier or if_exists:
                raise PolicyError(f"{label}: unsupported condition operator {written!r}")
            family, negated, prepare = None, False, _null_prepare
        elif base.lower() in _OPERATORS_LOWER:
            family, negated = _OPERATORS[_OPERATORS_LOWER[base.lower()]]
            prepare = _FAMILIES[family][0]
        else:
            raise PolicyError(f"{label}: unsupported condition operator {written!r}")
        for key, raw in block.items():
            raws = raw if isinstance(raw, list) else [raw]
            if not raws:
                raise PolicyError(f"{label}: {written} gives {key} no values")
            for one in raws:
                if not isinstance(one, (str, bool, int, float)):
                    raise PolicyError(f"{label}: {written} value {one!r} for {key} is not a scalar")
            values = tuple(prepare(one, written, label) for one in raws)
            clauses.append(_Clause(written, key.lower(), family, negated, qualifier, if_exists,
                                   values))
    return clauses


def _null_prepare(raw, operator, label):
    return _bool_prepare(raw, operator, label) == "true"


def _clause_holds(clause: _Clause, context: Mapping[str, object]) -> bool:
    found = context.get(clause.key, _ABSENT)
    # An empty multivalued key is the "null data set" the set-operator docs speak of: treated as
    # absent throughout.
    absent = found is _ABSENT or found is None or (isinstance(found, (list, tuple)) and not found)
    if clause.family is None:
        # Null: "true" means the key must be absent, "false" that it must be present.
        return any(want == absent for want in clause.values)
    if absent:
        # Order matters: IfExists first ("If the key is not present, evaluate the condition
        # element as true"), then the set operators (ForAllValues "returns true if ... the context
        # key doesn't exist"; ForAnyValue "returns false if ... the key resolves to a null data
        # set"), then the plain rule: positive operators false, negated ones true.
        if clause.if_exists:
            return True
        if clause.qualifier == "forallvalues":
            return True
        if clause.qualifier == "foranyvalue":
            return False
        return clause.negated
    match = _FAMILIES[clause.family][1]
    request_values = list(found) if isinstance(found, (list, tuple)) else [found]
    # Several policy values are ORed; for a negated operator they are NORed ("If a single negated
    # matching condition operator includes multiple values for a context key, those values are
    # evaluated using a logical NOR", reference_policies_multi-value-conditions.html).
    per_value = []
    for value in request_values:
        hit = any(match(value, policy_value) for policy_value in clause.values)
        per_value.append(not hit if clause.negated else hit)
    if clause.qualifier == "forallvalues":
        return all(per_value)
    if clause.qualifier == "foranyvalue":
        return any(per_value)
    # No set operator: a positive operator holds when some request value matches; a negated one
    # when none does.
    return all(per_value) if clause.negated else any(per_value)


# --- statements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    policy: str
    where: str  # "identity policy", "resource policy", "key policy", "trust policy"
    index: int
    sid: str | None
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None  # None: the statement has no Resource (trust policies)
    not_resource: bool
    principals: tuple[tuple[str, str], ...] | None
    not_principal: bool
    conditions: tuple[_Clause, ...]

    @property
    def label(self) -> str:
        return self.sid if self.sid else f"statement {self.index} of {self.policy}"

    def describe(self) -> str:
        if self.sid:
            return f"statement {self.sid} in {self.where} {self.policy!r}"
        return f"statement {self.index} of {self.where} {self.policy!r}"


def _strings(value, element: str, label: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{label}: {element} must be a string or a list of strings")
    return tuple(values)


def _compile_policy(name: str, document, where: str, resource_based: bool) -> list[_Statement]:
    if isinstance(document, (str, bytes)):
        document = json.loads(document)
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise PolicyError(f"{where} {name!r} has no Statement")
    raw_statements = document["Statement"]
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    statements = []
    for index, raw in enumerate(raw_statements, start=1):
        if not isinstance(raw, Mapping):
            raise PolicyError(f"statement {index} of {where} {name!r} is not an object")
        label = f"statement {raw.get('Sid') or index} of {where} {name!r}"
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{label}: Effect must be Allow or Deny, not {effect!r}")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError(f"{label}: needs exactly one of Action and NotAction")
        not_action = "NotAction" in raw
        actions = _strings(raw["NotAction" if not_action else "Action"], "Action", label)
        if "Resource" in raw and "NotResource" in raw:
            raise PolicyError(f"{label}: has both Resource and NotResource")
        not_resource = "NotResource" in raw
        resources = None
        if "Resource" in raw or not_resource:
            resources = _strings(raw["NotResource" if not_resource else "Resource"], "Resource",
                                 label)
            for resource in resources:
                if "${" in resource:
                    raise PolicyError(f"{label}: policy variables are not supported ({resource!r})")
        elif not resource_based:
            raise PolicyError(f"{label}: an identity policy statement needs a Resource or "
                              "NotResource")
        has_principal, has_not = "Principal" in raw, "NotPrincipal" in raw
        principals, not_principal = None, False
        if resource_based:
            if has_principal == has_not:
                raise PolicyError(f"{label}: needs exactly one of Principal and NotPrincipal")
            if has_not:
                # "NotPrincipal must be used with "Effect":"Deny". Using it with "Effect":"Allow"
                # is not supported." ... "You cannot use the NotPrincipal element in an IAM
                # identity-based policy nor in an IAM role trust policy." (NotPrincipal page)
                if effect != "Deny":
                    raise PolicyError(f"{label}: NotPrincipal is supported only with Deny")
                if where == "trust policy":
                    raise PolicyError(f"{label}: NotPrincipal is not allowed in a trust policy")
            not_principal = has_not
            principals = tuple(_principal_entries(raw["NotPrincipal" if has_not else "Principal"],
                                                  label))
        elif has_principal or has_not:
            # "You cannot use the Principal element in an identity-based policy." (Principal page)
            raise PolicyError(f"{label}: an identity policy cannot name a Principal")
        statements.append(_Statement(
            name, where, index, raw.get("Sid") or None, effect, actions, not_action, resources,
            not_resource, principals, not_principal,
            tuple(_compile_conditions(raw.get("Condition"), label))))
    return statements


def _applies(statement: _Statement, request: Request, context: Mapping[str, object]) -> bool:
    """Action, resource and condition (not principal) match the request."""
    action_hit = any(_action_matches(p, request.action) for p in statement.actions)
    if action_hit == statement.not_action:
        return False
    if statement.resources is not None:
        resource_hit = any(_arn_like(p, request.resource) for p in statement.resources)
        if resource_hit == statement.not_resource:
            return False
    # Keys and operators are ANDed ("If your policy statement has multiple condition operators,
    # the condition operators are evaluated using a logical AND" -- multi-value-conditions page).
    return all(_clause_holds(clause, context) for clause in statement.conditions)


def _context(request: Request, caller: _Caller) -> dict[str, object]:
    context = {str(key).lower(): value for key, value in request.context.items()}
    # What AWS derives from the authenticated caller wins over anything a caller passed in.
    # aws:PrincipalArn of a role session is the role ARN (global condition keys page: "For IAM
    # roles, the request context returns the ARN of the role, not the ARN of the user that
    # assumed the role").
    if caller.kind == "service":
        context["aws:principalservicename"] = caller.arn
    else:
        derived = caller.role_arn if caller.kind == "session" else caller.arn
        given = context.get("aws:principalarn")
        if caller.kind == "session" and isinstance(given, str) and _same_role(given, caller):
            derived = given  # the caller knows the role's path, which the session ARN drops
        context["aws:principalarn"] = derived
        context["aws:principalaccount"] = caller.account
    return context


def _same_role(role_arn: str, caller: _Caller) -> bool:
    parts = role_arn.split(":", 5)
    return (len(parts) == 6 and parts[2] == "iam" and parts[4] == caller.account
            and parts[5].startswith("role/") and caller.role_arn is not None
            and _role_name(parts[5]) == _role_name(caller.role_arn))


# --- the decision ---------------------------------------------------------------------------------


def evaluate(
    request: Request,
    identity_policies: Sequence[tuple[str, dict]],
    resource_policy: tuple[str, dict] | None,
    kind: ResourcePolicyKind = ResourcePolicyKind.OPTIONAL,
) -> Decision:
    """Decide one request as AWS would (see the module docstring for the rules followed)."""
    caller = _parse_caller(request.principal_arn)
    context = _context(request, caller)
    where = "resource policy" if kind is ResourcePolicyKind.OPTIONAL else kind.value

    # Every policy is read in full first, so a malformed statement raises whatever it is next to.
    identity = [s for name, doc in identity_policies
                for s in _compile_policy(name, doc, "identity policy", resource_based=False)]
    resource = (_compile_policy(resource_policy[0], resource_policy[1], where, resource_based=True)
                if resource_policy is not None else [])

    # 1. Explicit deny in any applicable policy wins ("If the code finds even one explicit deny
    #    that applies, the code returns a final decision of Deny", policy-eval-denyallow page).
    for statement in identity:
        if statement.effect == "Deny" and _applies(statement, request, context):
            return Decision(False, f"explicit deny by {statement.describe()}", statement.label)
    resource_allows: list[tuple[_Statement, str]] = []
    for statement in resource:
        if statement.not_principal:
            names_caller = not _not_principal_excludes(list(statement.principals), caller)
            how = DIRECT if names_caller else None
        else:
            how = _principal_match(list(statement.principals), caller)
        if how is None or not _applies(statement, request, context):
            continue
        if statement.effect == "Deny":
            return Decision(False, f"explicit deny by {statement.describe()}", statement.label)
        resource_allows.append((statement, how))

    # 2. Allows.
    identity_allow = next((s for s in identity
                           if s.effect == "Allow" and _applies(s, request, context)), None)
    direct = next((s for s, how in resource_allows if how == DIRECT), None)
    delegated = next((s for s, how in resource_allows if how == ACCOUNT), None)
    resource_account = request.resource_account or caller.account
    cross_account = caller.account is not None and resource_account != caller.account

    if caller.kind == "root":
        # "By default, all requests are implicitly denied with the exception of the AWS account
        # root user, which has full access." (policy-eval-denyallow page). The root user has no
        # identity policies; its own full access plays their part, so a key or trust policy still
        # has to allow it (KMS: "No AWS principal, including the account root user ..., has any
        # permissions to a KMS key unless they are explicitly allowed ... in a key policy").
        identity_text = "the root user's full access"
        identity_ok = True
    elif caller.kind == "service":
        # A service principal is authorised by the resource policy alone.
        identity_text = "not used for a service principal"
        identity_ok = False
    elif identity_allow is not None:
        identity_text = f"allowed by {identity_allow.describe()}"
        identity_ok = True
    else:
        identity_text = "none allows" if identity else "none attached"
        identity_ok = False

    def allowed(*parts: _Statement | None, via: str) -> Decision:
        named = [p.describe() for p in parts if p is not None]
        deciding = next((p.label for p in reversed(parts) if p is not None), None)
        text = " and ".join(named) if named else identity_text
        return Decision(True, f"allowed by {text} ({via})", deciding)

    if caller.kind == "service":
        if direct is not None:
            return allowed(direct, via=f"the {where} names the service")
    elif cross_account:
        # "the requester in Account A must have an identity-based policy that allows them to make
        # a request to the resource in Account B. Also, the resource-based policy in Account B
        # must allow the requester in Account A to access the resource." (cross-account page)
        resource_ok = direct or delegated
        if identity_ok and resource_ok is not None:
            return allowed(identity_allow, resource_ok, via="cross-account: both sides allow")
    elif kind is ResourcePolicyKind.OPTIONAL:
        # "If either the identity-based policy or the resource-based policy within the same account
        # allows the request and the other doesn't, the request is still allowed."
        # (policy-eval-basics page). A resource policy naming the whole account grants to the
        # account, whose IAM policies must then grant it to the caller: an identity allow.
        if direct is not None:
            return allowed(direct, via=f"the {where} names the principal")
        if identity_ok:
            return allowed(identity_allow, via="identity policy, same account")
    else:
        # "IAM role trust policies and KMS key policies are exceptions to this logic, because they
        # must explicitly allow access for principals." (policy-eval-denyallow page). A key policy
        # naming the account "enables IAM policies" (KMS key-policies page): then IAM must allow.
        if direct is not None:
            return allowed(direct, via=f"the {where} names the principal")
        if delegated is not None and identity_ok:
            return allowed(identity_allow, delegated,
                           via=f"the {where} delegates to the account's IAM policies")

    # 3. Implicit deny.
    if resource_policy is None:
        resource_text = "none attached"
    elif direct is not None:
        resource_text = f"allowed by {direct.describe()}"
    elif delegated is not None:
        resource_text = f"delegated to the account by {delegated.describe()}"
    else:
        resource_text = "none allows"
    notes = []
    if cross_account:
        notes.append(f"cross-account ({caller.account} -> {resource_account}): both must allow")
    elif kind is not ResourcePolicyKind.OPTIONAL and caller.kind != "service":
        notes.append(f"the {where} must allow")
    note = f"; {notes[0]}" if notes else ""
    return Decision(
        False,
        f"no statement allows {request.action} on {request.resource} for "
        f"{request.principal_arn} (identity policies: {identity_text}; {where}: "
        f"{resource_text}{note})",
        None,
    )
