"""SSM Run Command as forensnap's memory capture (issue 15) needs it: managed instances, a
stand-in agent that really runs forensnap's document, and the faults of a host that cannot be
reached, hangs, or whose upload does not arrive whole.

moto 5.2.5 records a SendCommand and reports success without running anything, implements
neither ``DescribeInstanceInformation`` nor ``ListCommandInvocations``, and its Command adds
every instance of the account to a command sent to one (its ``Targets`` filter is empty). This
module answers these calls itself for the instances the world manages:

* **Managed instances** (:func:`register`, ``POST /_forensnap/ssm/instances``, sent by the seed
  for every instance with ``memory_mib`` or ``ssm`` in the world file): RAM size, SSM state
  ``online`` (an agent that answers), ``offline`` (``ConnectionLost``) or ``none`` (not
  managed), and a behaviour (:data:`MODES`, ``POST /_forensnap/ssm/behaviour``).
* **DescribeInstanceInformation**: the account's managed instances of the region (``none``
  excepted) with ``PingStatus`` ``Online`` or ``ConnectionLost``, ``PlatformType`` Linux, an
  ``AgentVersion``; filters ``InstanceIds``, ``PingStatus``, ``PlatformTypes``, ``ResourceType``
  (either filter form), ``MaxResults``/``NextToken``.
* **SendCommand** naming a managed instance: every instance must be managed, ``online`` and
  reachable, else ``InvalidInstanceId`` ("not in a valid state", as AWS answers for an
  unmanaged or disconnected instance); the document must be a Command document of the account
  (what the member-role stack deployed: its content exactly the template's), with one
  ``aws:runShellScript`` step; parameters are checked against the document's declarations
  (unknown, missing, ``allowedPattern``: ``InvalidParameters``). A SendCommand naming no managed
  instance, or an AWS-owned document (``AWS-RunShellScript``), is left to moto.
* **The stand-in agent** (:func:`_run`): in a background thread, the step's commands with the
  parameters substituted as SSM substitutes them (``{{ AvmlUrl }}`` -> the value, as text) are
  written to ``_script.sh`` and run with ``bash`` in a fresh working directory, with the
  environment an SSM agent gives (``AWS_SSM_INSTANCE_ID``, ``AWS_SSM_REGION_NAME``) plus
  ``FORENSNAP_SCRATCH_ROOT`` (a temporary directory: the test machine's /dev/shm is not the
  instance's) and what the world's stand-in AVML (``avml.py``) needs to know about the
  "hardware": ``FORENSNAP_WORLD_MEMORY_MIB``, ``FORENSNAP_WORLD_AVML_MODE`` (and the world's pid,
  ``FORENSNAP_WORLD_PID``, so that a hung stand-in ends with its world). ``PATH`` is the
  world's, with the world's own Python first (the stand-in AVML is a Python script). The run
  ends ``Success`` (exit 0), ``Failed`` (another exit status) or ``TimedOut`` when the world
  clock passes its start plus the command's ``TimeoutSeconds`` (or the step's
  ``timeoutSeconds``, 3600 by default, if shorter): the script's process group is then sent
  SIGTERM, and SIGKILL 5 s later, so nothing more is uploaded.
* **GetCommandInvocation** (``Pending``, ``InProgress``, then ``Success`` / ``Failed`` /
  ``TimedOut``; ``ResponseCode`` -1 until the script exits; standard output and error, each
  truncated to its first 24,000 characters as AWS does, empty while running; execution start,
  end and elapsed time on the world clock) and **ListCommandInvocations** (``CommandId``,
  ``InstanceId``, ``Details`` with the plugin's ``Output``: 2,500 characters of stdout, then
  stderr after AWS's ``----------ERROR-------`` line).
* ``GET /_forensnap/ssm/commands``: every invocation as the host received it (the document
  hash, the parameters, the substituted script text, the environment's names, status, output),
  for tests that check what reached the instance.

Behaviours (:data:`MODES`): ``normal``; ``unreachable`` (``ConnectionLost``, SendCommand
``InvalidInstanceId``); ``hang`` (the stand-in AVML writes half the image and never finishes:
the invocation ends ``TimedOut``); ``truncate`` (the host believes every part was uploaded
and prints the SHA-256 of the whole image, but the world keeps only the first part: every
later UploadPart of that capture's upload -- the upload ids of the plan the command names -- is
answered 200 with the part's ETag and not stored while that command runs, so what S3 holds
disagrees with the host's hash); ``oversize`` (the stand-in's RAM is one MiB more than the plan's parts cover:
``len(parts) * part_bytes``, so the script runs out of presigned URLs).
"""

from __future__ import annotations

import atexit
import base64
import datetime
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from . import clock
from .wire import AwsError, Call

log = logging.getLogger("forensnap_world")

MODES = ("normal", "unreachable", "hang", "truncate", "oversize")
STATES = ("online", "offline", "none")
DEFAULT_MEMORY_MIB = 64
AGENT_VERSION = "3.3.1957.0"
PLATFORM = {"PlatformType": "Linux", "PlatformName": "Amazon Linux", "PlatformVersion": "2023"}
OUTPUT_LIMIT = 24_000
"""GetCommandInvocation: "The first 24,000 characters written by the plugin to stdout/stderr"."""
LIST_OUTPUT_LIMIT = 2_500
"""ListCommandInvocations: a plugin's ``Output`` holds up to 2,500 characters."""
DEFAULT_STEP_TIMEOUT = 3600
"""aws:runShellScript's ``timeoutSeconds`` when the step names none."""
KILL_GRACE_SECONDS = 5.0
TIMEOUT_RANGE = (30, 2_592_000)
OPERATIONS = ("SendCommand", "GetCommandInvocation", "ListCommandInvocations", "DescribeInstanceInformation")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
MIB = 1 << 20


@dataclass
class Managed:
    """An instance the world's SSM knows."""

    instance_id: str
    account: str
    region: str
    memory_mib: int = DEFAULT_MEMORY_MIB
    ssm: str = "online"
    mode: str = "normal"

    @property
    def ping_status(self) -> str:
        return "Online" if self.ssm == "online" and self.mode != "unreachable" else "ConnectionLost"

    def to_json(self) -> dict:
        return {"instance_id": self.instance_id, "account": self.account, "region": self.region,
                "memory_mib": self.memory_mib, "ssm": self.ssm, "mode": self.mode}


@dataclass
class Invocation:
    """One command on one instance, as the stand-in agent runs it."""

    command_id: str
    instance_id: str
    account: str
    region: str
    document_name: str
    document_version: str
    document_hash: str
    comment: str
    parameters: dict[str, list[str]]
    timeout_seconds: int
    plugin_name: str
    script: str
    memory_mib: int
    mode: str
    requested: datetime.datetime
    status: str = "Pending"
    status_details: str = "Pending"
    response_code: int = -1
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None
    stdout: str = ""
    stderr: str = ""
    environment: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return self.status in ("Success", "Failed", "TimedOut", "Cancelled")


_lock = threading.RLock()
_managed: dict[str, Managed] = {}
_invocations: dict[tuple[str, str], Invocation] = {}
_truncated_uploads: set[str] = set()
"""Upload ids of captures in ``truncate`` mode: their parts after the first are not stored."""


# --- control API ------------------------------------------------------------------------------


def register(payload: dict) -> dict:
    """``POST /_forensnap/ssm/instances`` ``{"account", "region", "instance_id", "memory_mib",
    "ssm"}``: the instance is managed (``ssm`` default ``online``, ``memory_mib`` default 64)."""
    instance_id = str(payload["instance_id"])
    ssm = payload.get("ssm") or "online"
    if ssm not in STATES:
        raise ValueError(f"ssm must be one of {', '.join(STATES)}, not {ssm!r}")
    memory = payload.get("memory_mib")
    memory = DEFAULT_MEMORY_MIB if memory is None else memory
    if not isinstance(memory, int) or isinstance(memory, bool) or memory < 1:
        raise ValueError(f"memory_mib must be a whole number of MiB, at least 1, not {memory!r}")
    managed = Managed(instance_id, str(payload["account"]), str(payload.get("region") or "us-east-1"),
                      memory, ssm)
    with _lock:
        _managed[instance_id] = managed
    return managed.to_json()


def set_behaviour(payload: dict) -> dict:
    """``POST /_forensnap/ssm/behaviour`` ``{"instance_id", "mode"}`` (:data:`MODES`); the mode
    applies to commands sent from then on (and ``unreachable`` at once to
    DescribeInstanceInformation)."""
    instance_id, mode = str(payload["instance_id"]), payload.get("mode")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    with _lock:
        managed = _managed.get(instance_id)
        if managed is None:
            raise KeyError(f"{instance_id} is not an instance the world's SSM manages (give it memory_mib "
                           "or ssm in the world file)")
        managed.mode = mode
        return managed.to_json()


def commands() -> list[dict]:
    """``GET /_forensnap/ssm/commands``: every invocation, oldest first, as the host got it."""
    with _lock:
        invocations = sorted(_invocations.values(), key=lambda i: (i.requested, i.command_id))
        return [{
            "command_id": i.command_id, "instance_id": i.instance_id, "account": i.account,
            "region": i.region, "document_name": i.document_name, "document_version": i.document_version,
            "document_hash": i.document_hash, "comment": i.comment, "parameters": i.parameters,
            "timeout_seconds": i.timeout_seconds, "script": i.script, "environment": list(i.environment),
            "mode": i.mode, "status": i.status, "response_code": i.response_code,
            "stdout": i.stdout, "stderr": i.stderr,
        } for i in invocations]


def reset() -> None:
    """Forget everything; stop every script still running (its whole process group)."""
    with _lock:
        running = [i for i in _invocations.values() if i.process is not None]
        for invocation in running:
            invocation.cancelled = True
        _managed.clear()
        _invocations.clear()
        _truncated_uploads.clear()
    for invocation in running:
        process = invocation.process
        if process is not None:
            _stop(process)


atexit.register(reset)


# --- the API ----------------------------------------------------------------------------------


def handles(call: Call) -> bool:
    return call.service == "ssm" and call.operation in OPERATIONS


def answer(call: Call):
    """(status, headers, body) of an SSM call the world answers itself, or None for moto."""
    body = _body(call)
    if call.operation == "SendCommand":
        result = send_command(call, body)
    elif call.operation == "GetCommandInvocation":
        result = get_command_invocation(call, body)
    elif call.operation == "ListCommandInvocations":
        result = list_command_invocations(call, body)
    else:
        result = describe_instance_information(call, body)
    if result is None:
        return None
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return 200, headers, json.dumps(result).encode()


def _body(call: Call) -> dict:
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        raise AwsError(400, "SerializationException", "The request body is not JSON") from None
    if not isinstance(body, dict):
        raise AwsError(400, "SerializationException", "The request body is not a JSON object")
    return body


def _epoch(when: datetime.datetime | None) -> float | None:
    if when is None:
        return None
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def _iso(when: datetime.datetime | None) -> str:
    if when is None:
        return ""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _elapsed(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"PT{max(0.0, (end - start).total_seconds()):.3f}S"


# --- DescribeInstanceInformation ---------------------------------------------------------------

_FILTER_KEYS = {"InstanceIds": "InstanceId", "PingStatus": "PingStatus", "PlatformTypes": "PlatformType",
                "ResourceType": "ResourceType", "AgentVersion": "AgentVersion"}


def describe_instance_information(call: Call, body: dict) -> dict:
    wanted: dict[str, set[str]] = {}
    for spec, key_name, values_name in ((body.get("InstanceInformationFilterList"), "key", "valueSet"),
                                        (body.get("Filters"), "Key", "Values")):
        for item in spec or []:
            key = item.get(key_name)
            if key not in _FILTER_KEYS:
                raise AwsError(400, "InvalidFilterKey", f"The filter key {key!r} is not valid; valid keys: "
                                                        f"{', '.join(_FILTER_KEYS)}")
            values = item.get(values_name) or []
            if not values:
                raise AwsError(400, "InvalidInstanceInformationFilterValue",
                               f"The filter {key} needs at least one value")
            wanted.setdefault(_FILTER_KEYS[key], set()).update(str(v) for v in values)
    with _lock:
        listed = [m for m in _managed.values()
                  if m.account == call.account and m.region == call.region and m.ssm != "none"]
    rows = [_information(m) for m in sorted(listed, key=lambda m: m.instance_id)]
    rows = [r for r in rows if all(r.get(k) in values for k, values in wanted.items())]
    out: dict = {}
    if body.get("MaxResults") is not None:
        size = int(body["MaxResults"])
        if not 5 <= size <= 50:
            raise AwsError(400, "ValidationException", "MaxResults must be between 5 and 50")
        start = int(body.get("NextToken") or 0)
        page = rows[start:start + size]
        if start + size < len(rows):
            out["NextToken"] = str(start + size)
        rows = page
    out["InstanceInformationList"] = rows
    return out


def _information(managed: Managed) -> dict:
    ip = "10.0.0.10"
    try:
        from moto.ec2.models import ec2_backends

        ip = ec2_backends[managed.account][managed.region].get_instance(managed.instance_id).private_ip or ip
    except Exception:  # noqa: BLE001 - a terminated or unknown instance keeps a made-up address
        pass
    domain = "ec2.internal" if managed.region == "us-east-1" else f"{managed.region}.compute.internal"
    return {
        "InstanceId": managed.instance_id,
        "PingStatus": managed.ping_status,
        "LastPingDateTime": _epoch(clock.now()),
        "AgentVersion": AGENT_VERSION,
        "IsLatestVersion": True,
        **PLATFORM,
        "ResourceType": "EC2Instance",
        "IPAddress": ip,
        "ComputerName": f"ip-{ip.replace('.', '-')}.{domain}",
        "AssociationStatus": "Success",
        "SourceId": managed.instance_id,
        "SourceType": "AWS::EC2::Instance",
    }


# --- SendCommand -------------------------------------------------------------------------------


def _document(account: str, region: str, name: str, version: str | None):
    """moto's document ``name`` (a name or an ARN) of the account, at ``version``, or None."""
    from moto.ssm.models import ssm_backends

    short = name.rsplit("document/", 1)[-1] if name.startswith("arn:") else name
    if name.startswith("arn:") and name.split(":")[4:5] != [account]:
        return None  # another account's (shared) or an AWS-owned document
    documents = ssm_backends[account][region]._documents.get(short)
    if documents is None:
        return None
    if version in (None, "", "$DEFAULT"):
        return documents.get_default_version()
    if version == "$LATEST":
        return documents.get_latest_version()
    found = documents.find_by_version(str(version))
    if found is None:
        raise AwsError(400, "InvalidDocumentVersion", f"Document {short} has no version {version}.")
    return found


def _aws_owned(name: str) -> bool:
    from .policy.authorize import _AWS_OWNED_DOCUMENTS

    return name.rsplit("document/", 1)[-1].startswith(_AWS_OWNED_DOCUMENTS)


def _parameters(document, given: dict) -> dict[str, str]:
    """The document's parameters with the values given (or their defaults), checked as SSM checks
    them."""
    declared = (document.content_json or {}).get("parameters") or {}
    if not isinstance(given, dict):
        raise AwsError(400, "InvalidParameters", "Parameters must be a map of names to lists of values")
    for name in given:
        if name not in declared:
            raise AwsError(400, "InvalidParameters", f"Parameter \"{name}\" is not declared by the document "
                                                     f"{document.name}.")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in given:
            value = given[name]
            value = value if isinstance(value, list) else [value]
            if spec.get("type", "String") == "String" and len(value) != 1:
                raise AwsError(400, "InvalidParameters", f"Parameter \"{name}\" takes one value, not {len(value)}.")
            text = "\n".join(str(v) for v in value)
        elif "default" in spec:
            text = str(spec["default"])
        else:
            raise AwsError(400, "InvalidParameters", f"Parameter \"{name}\" is required.")
        if "maxChars" in spec and len(text) > int(spec["maxChars"]):
            raise AwsError(400, "InvalidParameters",
                           f"Parameter \"{name}\" is longer than its maxChars {spec['maxChars']}.")
        if "minChars" in spec and len(text) < int(spec["minChars"]):
            raise AwsError(400, "InvalidParameters",
                           f"Parameter \"{name}\" is shorter than its minChars {spec['minChars']}.")
        pattern = spec.get("allowedPattern")
        if pattern and not re.fullmatch(pattern, text):
            raise AwsError(400, "InvalidParameters",
                           f"Parameter \"{name}\" value does not match the allowed pattern {pattern}.")
        allowed = spec.get("allowedValues")
        if allowed and text not in [str(v) for v in allowed]:
            raise AwsError(400, "InvalidParameters", f"Parameter \"{name}\" value is not one of {allowed}.")
        values[name] = text
    return values


def _shell_step(document) -> dict:
    content = document.content_json or {}
    steps = content.get("mainSteps") or []
    shell = [s for s in steps if s.get("action") == "aws:runShellScript"]
    if document.document_type != "Command" or str(content.get("schemaVersion")) != "2.2" \
            or len(shell) != 1 or len(steps) != 1:
        raise AwsError(400, "InvalidDocument",
                       f"Document {document.name}: the local world runs Command documents of schema 2.2 "
                       "with exactly one aws:runShellScript step")
    return shell[0]


def substitute(text: str, values: dict[str, str]) -> str:
    """``{{ Name }}`` replaced by the parameter's value, as SSM does (plain text, no quoting)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def send_command(call: Call, body: dict) -> dict | None:
    instance_ids = body.get("InstanceIds") or []
    with _lock:
        if not any(i in _managed for i in instance_ids):
            return None  # no instance of the world's SSM: moto's behaviour
        managed = [_managed.get(i) for i in instance_ids]
    account, region = call.account, call.region
    for instance_id, known in zip(instance_ids, managed):
        if known is None or known.account != account or known.region != region \
                or known.ssm != "online" or known.mode == "unreachable":
            raise AwsError(400, "InvalidInstanceId",
                           f"Instances [[{instance_id}]] not in a valid state for account {account}")
    name = body.get("DocumentName") or ""
    document = _document(account, region, name, body.get("DocumentVersion"))
    if document is None or document.owner != account:
        if _aws_owned(name):
            return None  # AWS-RunShellScript & co.: moto records it and runs nothing
        raise AwsError(400, "InvalidDocument", f"Document with name {name} does not exist.")
    step = _shell_step(document)
    values = _parameters(document, body.get("Parameters") or {})
    timeout = body.get("TimeoutSeconds", 3600)
    if not isinstance(timeout, int) or not TIMEOUT_RANGE[0] <= timeout <= TIMEOUT_RANGE[1]:
        raise AwsError(400, "ValidationException", f"TimeoutSeconds must be between {TIMEOUT_RANGE[0]} and "
                                                   f"{TIMEOUT_RANGE[1]}, not {timeout!r}")
    comment = str(body.get("Comment") or "")
    if len(comment) > 100:
        raise AwsError(400, "ValidationException", "Comment must be at most 100 characters")
    inputs = step.get("inputs") or {}
    lines = inputs.get("runCommand") or []
    lines = [lines] if isinstance(lines, str) else lines
    script = substitute("\n".join(str(line) for line in lines), values)
    step_timeout = int(inputs.get("timeoutSeconds") or DEFAULT_STEP_TIMEOUT)
    command_id = str(uuid.uuid4())
    requested = clock.now()
    given = {k: (v if isinstance(v, list) else [v]) for k, v in (body.get("Parameters") or {}).items()}
    started = []
    with _lock:
        for known in managed:
            invocation = Invocation(
                command_id, known.instance_id, account, region, document.name, str(document.document_version),
                document.hash, comment, given, min(timeout, step_timeout), str(step.get("name") or "aws:runShellScript"),
                script, known.memory_mib, known.mode, requested)
            _invocations[(command_id, known.instance_id)] = invocation
            started.append(invocation)
    for invocation in started:
        threading.Thread(target=_run, args=(invocation,), daemon=True,
                         name=f"ssm-agent-{invocation.instance_id}").start()
    return {"Command": {
        "CommandId": command_id,
        "DocumentName": document.name,
        "DocumentVersion": str(document.document_version),
        "Comment": comment,
        "ExpiresAfter": _epoch(requested + datetime.timedelta(seconds=timeout)),
        "Parameters": given,
        "InstanceIds": list(instance_ids),
        "Targets": [],
        "RequestedDateTime": _epoch(requested),
        "Status": "Pending",
        "StatusDetails": "Pending",
        "OutputS3Region": region,
        "OutputS3BucketName": "",
        "OutputS3KeyPrefix": "",
        "MaxConcurrency": str(body.get("MaxConcurrency") or "50"),
        "MaxErrors": str(body.get("MaxErrors") or "0"),
        "TargetCount": len(instance_ids),
        "CompletedCount": 0,
        "ErrorCount": 0,
        "DeliveryTimedOutCount": 0,
        "ServiceRole": "",
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        "TimeoutSeconds": timeout,
    }}


# --- the stand-in agent ------------------------------------------------------------------------


def _read_object(url: str | None) -> bytes | None:
    """The object a (presigned, path-style) URL of the world names, read from moto's S3."""
    if not url:
        return None
    try:
        from moto.s3.models import s3_backends

        bucket, _, key = unquote(urlsplit(url).path).lstrip("/").partition("/")
        owner = s3_backends.bucket_accounts.get(bucket)
        if owner is None or not key:
            return None
        partition, account = owner
        return bytes(s3_backends[account][partition].get_object(bucket, key).value)
    except Exception:  # noqa: BLE001 - no plan: the script reports it itself
        return None


def _plan(url: str | None) -> dict | None:
    raw = _read_object(url)
    try:
        plan = json.loads(raw) if raw else None
    except ValueError:
        return None
    return plan if isinstance(plan, dict) and isinstance(plan.get("parts"), list) else None


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the script's process group (the script cleans its scratch directory), SIGKILL
    after :data:`KILL_GRACE_SECONDS`. The group is the one the agent started."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The script is gone; what it started in its group goes with it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return


def _environment(invocation: Invocation, scratch: str, memory_mib: int) -> dict[str, str]:
    world_python = os.path.dirname(os.path.abspath(sys.executable))
    return {
        "PATH": f"{world_python}:{os.environ.get('PATH') or '/usr/local/bin:/usr/bin:/bin'}",
        "HOME": scratch,
        "LANG": "C.UTF-8",
        "AWS_SSM_INSTANCE_ID": invocation.instance_id,
        "AWS_SSM_REGION_NAME": invocation.region,
        "FORENSNAP_SCRATCH_ROOT": scratch,
        "FORENSNAP_WORLD_MEMORY_MIB": str(memory_mib),
        "FORENSNAP_WORLD_AVML_MODE": "hang" if invocation.mode == "hang" else "normal",
        "FORENSNAP_WORLD_PID": str(os.getpid()),
    }


def _run(invocation: Invocation) -> None:
    """Run the invocation's script to its end (or its timeout), recording what happened."""
    work = tempfile.mkdtemp(prefix="forensnap-ssm-agent-")
    scratch = tempfile.mkdtemp(prefix="forensnap-ssm-scratch-")
    timed_out = False
    truncated: set[str] = set()
    try:
        memory_mib = invocation.memory_mib
        if invocation.mode in ("truncate", "oversize"):
            plan = _plan(invocation.parameters.get("PlanUrl", [None])[0])
            if plan is not None and invocation.mode == "oversize":
                covered = len(plan["parts"]) * int(plan.get("part_bytes") or 0)
                memory_mib = max(memory_mib, math.ceil(covered / MIB) + 1)
            if plan is not None and invocation.mode == "truncate":
                truncated = {parse_qs(urlsplit(str(p.get("url", ""))).query).get("uploadId", [""])[0]
                             for p in plan["parts"] if isinstance(p, dict)} - {""}
                with _lock:
                    _truncated_uploads.update(truncated)
        env = _environment(invocation, scratch, memory_mib)
        script = os.path.join(work, "_script.sh")
        with open(script, "w") as handle:
            handle.write(invocation.script)
        os.chmod(script, 0o700)
        out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
        with _lock:
            if invocation.cancelled:
                return
            invocation.status, invocation.status_details = "InProgress", "InProgress"
            invocation.started = clock.now()
            invocation.environment = sorted(env)
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                process = subprocess.Popen(["bash", script], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=err, start_new_session=True)
            invocation.process = process
        deadline = invocation.started + datetime.timedelta(seconds=invocation.timeout_seconds)
        while process.poll() is None:
            if invocation.cancelled:
                _stop(process)
                break
            if clock.now() >= deadline:
                timed_out = True
                _stop(process)
                break
            time.sleep(0.1)
        code = process.wait()
        stdout = _read_text(out_path)
        stderr = _read_text(err_path)
        with _lock:
            invocation.stdout, invocation.stderr = stdout, stderr
            if timed_out:
                invocation.status, invocation.status_details, invocation.response_code = \
                    "TimedOut", "Execution Timed Out", -1
            elif invocation.cancelled:
                invocation.status, invocation.status_details = "Cancelled", "Cancelled"
            elif code == 0:
                invocation.status, invocation.status_details, invocation.response_code = "Success", "Success", 0
            else:
                invocation.status, invocation.status_details = "Failed", "Failed"
                invocation.response_code = code if code >= 0 else 128 - code
    except Exception as err:  # noqa: BLE001 - the agent itself failed: the invocation says so
        log.exception("ssm agent: %s on %s", invocation.command_id, invocation.instance_id)
        with _lock:
            invocation.status, invocation.status_details, invocation.response_code = "Failed", "Failed", 1
            invocation.stderr = f"forensnap world SSM agent: {type(err).__name__}: {err}"
    finally:
        with _lock:
            _truncated_uploads.difference_update(truncated)
            invocation.process = None
            invocation.ended = clock.now()
            if invocation.started is None:
                invocation.started = invocation.ended
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --- GetCommandInvocation, ListCommandInvocations ------------------------------------------------


def _ours(command_id: str) -> bool:
    with _lock:
        return any(key[0] == command_id for key in _invocations)


def get_command_invocation(call: Call, body: dict) -> dict | None:
    command_id, instance_id = str(body.get("CommandId") or ""), str(body.get("InstanceId") or "")
    with _lock:
        invocation = _invocations.get((command_id, instance_id))
        if invocation is None:
            if _ours(command_id):
                raise AwsError(400, "InvocationDoesNotExist",
                               "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation")
            return None  # a command moto recorded
        if invocation.account != call.account or invocation.region != call.region:
            raise AwsError(400, "InvocationDoesNotExist",
                           "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation")
        plugin = body.get("PluginName")
        if plugin and plugin != invocation.plugin_name:
            raise AwsError(400, "InvalidPluginName", f"The plugin name {plugin} is not valid.")
        done = invocation.done
        return {
            "CommandId": invocation.command_id,
            "InstanceId": invocation.instance_id,
            "Comment": invocation.comment,
            "DocumentName": invocation.document_name,
            "DocumentVersion": invocation.document_version,
            "PluginName": invocation.plugin_name,
            "ResponseCode": invocation.response_code,
            "ExecutionStartDateTime": _iso(invocation.started),
            "ExecutionElapsedTime": _elapsed(invocation.started, invocation.ended),
            "ExecutionEndDateTime": _iso(invocation.ended) if done else "",
            "Status": invocation.status,
            "StatusDetails": invocation.status_details,
            "StandardOutputContent": invocation.stdout[:OUTPUT_LIMIT] if done else "",
            "StandardOutputUrl": "",
            "StandardErrorContent": invocation.stderr[:OUTPUT_LIMIT] if done else "",
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }


def list_command_invocations(call: Call, body: dict) -> dict:
    command_id, instance_id = body.get("CommandId"), body.get("InstanceId")
    details = bool(body.get("Details"))
    with _lock:
        found = [i for i in _invocations.values()
                 if i.account == call.account and i.region == call.region
                 and (not command_id or i.command_id == command_id)
                 and (not instance_id or i.instance_id == instance_id)]
        rows = [_listed(i, details) for i in sorted(found, key=lambda i: i.requested, reverse=True)]
    if command_id and not found and not _ours(command_id):
        rows = _moto_invocations(call, command_id, instance_id, details)
    return {"CommandInvocations": rows}


def _listed(invocation: Invocation, details: bool) -> dict:
    row = {
        "CommandId": invocation.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": "",
        "Comment": invocation.comment,
        "DocumentName": invocation.document_name,
        "DocumentVersion": invocation.document_version,
        "RequestedDateTime": _epoch(invocation.requested),
        "Status": invocation.status,
        "StatusDetails": invocation.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
        "ServiceRole": "",
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }
    if details:
        output = invocation.stdout
        if invocation.stderr:
            output += "\n----------ERROR-------\n" + invocation.stderr
        plugin = {
            "Name": invocation.plugin_name,
            "Status": invocation.status,
            "StatusDetails": invocation.status_details,
            "ResponseCode": invocation.response_code,
            "Output": output[:LIST_OUTPUT_LIMIT] if invocation.done else "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": invocation.region,
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
        }
        if invocation.started is not None:
            plugin["ResponseStartDateTime"] = _epoch(invocation.started)
        if invocation.done and invocation.ended is not None:
            plugin["ResponseFinishDateTime"] = _epoch(invocation.ended)
        row["CommandPlugins"] = [plugin]
    return row


def _moto_invocations(call: Call, command_id: str, instance_id: str | None, details: bool) -> list[dict]:
    """A command moto recorded (it ran nothing and says it succeeded), in this call's shape."""
    from moto.ssm.models import ssm_backends

    try:
        command = ssm_backends[call.account][call.region].get_command_by_id(command_id)
    except Exception:  # noqa: BLE001 - moto's RESTError: no such command
        raise AwsError(400, "InvalidCommandId", "Invalid command id.") from None
    rows = []
    for instance in command.instance_ids:
        if instance_id and instance != instance_id:
            continue
        row = {"CommandId": command_id, "InstanceId": instance, "InstanceName": "", "Comment": command.comment,
               "DocumentName": command.document_name, "DocumentVersion": "$DEFAULT",
               "RequestedDateTime": _epoch(command.requested_date_time), "Status": "Success",
               "StatusDetails": "Success", "TraceOutput": "", "StandardOutputUrl": "", "StandardErrorUrl": "",
               "CommandPlugins": [], "ServiceRole": ""}
        if details:
            row["CommandPlugins"] = [{"Name": "aws:runShellScript", "Status": "Success", "StatusDetails": "Success",
                                      "ResponseCode": 0, "Output": ""}]
        rows.append(row)
    return rows


# --- the truncated upload ----------------------------------------------------------------------


def swallow_upload(call: Call):
    """For an UploadPart after the first of a ``truncate`` capture: the answer S3 gives a stored
    part (200 and its ETag), without storing it. None for every other request."""
    if call.service != "s3" or call.operation != "UploadPart":
        return None
    upload_id = call.param("uploadId") or ""
    try:
        number = int(call.param("partNumber") or 0)
    except ValueError:
        return None
    with _lock:
        if upload_id not in _truncated_uploads or number < 2:
            return None
    etag = hashlib.md5(call.body).hexdigest()  # noqa: S324 - S3's ETag of a part is its MD5
    md5 = call.header("content-md5")
    if md5 and base64.b64encode(hashlib.md5(call.body).digest()).decode() != md5:  # noqa: S324
        raise AwsError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
    return 200, [("ETag", f'"{etag}"'), ("x-amz-request-id", str(uuid.uuid4()))], b""
