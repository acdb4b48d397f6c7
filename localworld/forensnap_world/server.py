"""The local AWS world's HTTP server: moto's dispatcher wrapped in forensnap's extension.

Request flow: control API (``/_forensnap/...``) or, for AWS calls: fault injection, credential
checks (presigned URLs: expiry and signature), our own EBS data plane, CloudTrail and SSM calls
and S3 checks, then moto, then S3 post-processing; every authenticated management call is then
recorded as a CloudTrail event (``cloudtrail``), refusals included.

Control API (JSON over HTTP, loopback only):

* ``GET  /_forensnap/health``                   -> ``{"ok": true, "moto": "5.2.5"}``
* ``POST /_forensnap/volumes``  ``{"volume_id", "image", "size_gib"}`` -> content registered
* ``POST /_forensnap/faults``   one rule (see ``faults``); ``GET`` lists; ``DELETE`` clears
* ``POST /_forensnap/clock``    ``{"advance_seconds": n}`` moves the world clock forward
* ``GET|POST /_forensnap/settings`` ``{"snapshot_seconds", "copy_seconds", "policies"}``
* ``POST /_forensnap/instance-profile`` ``{"access_key_id", "account", "role_name"}``: requests
  signed with that key come from a session of the role, as instance-profile credentials do
* ``GET|DELETE /_forensnap/authorizations`` every policy decision since the last reset
* ``GET /_forensnap/deliveries``                EventBridge deliveries refused since the last
  reset (``{"failed": [{"rule", "target", "reason"}]}``; see ``eventbridge``)
* ``POST /_forensnap/unused-grants`` ``{"roles": [ARN, ...]}``: each action the roles' identity
  policies allow that no allowed decision since the last reset used
* ``POST /_forensnap/cloudtrail/seed`` ``{"account", "region", "trail": {"name",
  "history_hours"}, "events": [...]}``: a member's CloudTrail history (``seed.py`` sends the
  world file's ``[members.trail]`` and ``[[members.trail_events]]``), then delivered
  -> ``{"trail_arn", "events", "log_files", "digest_files"}`` (see ``trails.seed``)
* ``POST /_forensnap/cloudtrail/deliver`` ``{}``: every trail that has logged delivers the log
  files of its events not yet delivered (up to the world clock's now) and the digests of every
  hour passed since its last digest -> ``{"log_files": n, "digest_files": m}``
* ``POST /_forensnap/cloudtrail/tamper`` ``{"account", "region", "kind", "index"}``, kind one of
  ``log-modified``, ``log-deleted``, ``digest-modified``, ``digest-deleted``,
  ``signature-replaced``; ``index`` counts that kind's files from the oldest (default: a middle
  one a digest covers / with a successor digest) -> ``{"key": the changed key}``
* ``POST /_forensnap/ssm/instances`` ``{"account", "region", "instance_id", "memory_mib", "ssm"}``:
  the instance is managed by the world's SSM (``seed.py`` sends every instance with
  ``memory_mib`` or ``ssm``); ``ssm`` is ``online`` (default), ``offline`` or ``none``
* ``POST /_forensnap/ssm/behaviour`` ``{"instance_id", "mode"}``: ``normal``, ``unreachable``,
  ``hang``, ``truncate`` or ``oversize`` for the commands sent to it from then on (see ``ssm``)
* ``GET  /_forensnap/ssm/commands``            every SSM command the stand-in agent ran, as the
  instance received it (parameters, the script text, status, output)
* ``POST /_forensnap/reset``    everything back to empty (also on moto's ``/moto-api/reset``)

Test-only request header: ``x-forensnap-transport: http | tls1.0 | tls1.1 | tls1.2 | tls1.3``
makes a request's authorisation see that transport (``aws:SecureTransport``, ``s3:TlsVersion``);
without it a request is authorised as TLS 1.3 (``wire.TRANSPORT_HEADER``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

from . import (MOTO_VERSION, clock, cloudtrail, ebs, eventbridge, identity, killer, patches, queues,
               s3checks, ssm, trails)
from .policy import authorize as authz
from .faults import FAULTS, INTERNAL, THROTTLE
from .volumes import REGISTRY, load
from .wire import AwsError, error, read_call, respond

log = logging.getLogger("forensnap_world")


class World:
    """The WSGI application."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app

        patches.apply()
        eventbridge.apply()
        identity.install()
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_forensnap/"):
            return self.control(environ, start_response)
        if path.startswith("/moto-api/reset"):
            self.reset_extension()
            return self.moto(environ, start_response)
        call = read_call(environ)
        try:
            kill_after = None
            fired = FAULTS.pick(call.service, call.operation, subject(call),
                                lambda: client_process(environ)) if call.service else []
            for rule, pid in fired:
                if rule.kind == "kill":
                    if rule.when == "before":
                        killer.kill(pid)
                        return self.drop(environ)
                    kill_after = pid
                elif rule.kind == "latency":
                    time.sleep(rule.latency_ms / 1000.0)
                elif rule.kind == "corrupt":
                    environ["forensnap.corrupt"] = True
                elif rule.kind == "duplicate":
                    environ["forensnap.duplicate"] = True
                elif rule.kind == "drop":
                    return self.drop(environ)
                elif rule.kind == "throttle":
                    status, code, reason = THROTTLE.get(call.service, (400, "ThrottlingException", None))
                    return respond(start_response, *error(call.service, status, rule.code or code,
                                                          "Rate exceeded (injected)", reason))
                elif rule.kind == "error":
                    code = rule.code or INTERNAL.get(call.service, "InternalFailure")
                    return respond(start_response, *error(call.service, rule.status, code,
                                                          "Internal error (injected)"))
            if kill_after is not None:
                try:
                    self.serve(call, environ, lambda *args, **kwargs: None)
                finally:
                    killer.kill(kill_after)
                return self.drop(environ)
            return self.serve(call, environ, start_response)
        except AwsError as err:
            return respond(start_response, *error(call.service, err.status, err.code,
                                                  err.message, err.reason))

    def serve(self, call, environ, start_response):
        # A request that fails authentication has no identity and is no CloudTrail event.
        identity.check_presigned(call)
        identity.check_credentials(call)
        if call.presigned:
            # moto finds the account from an Authorization header only; a presigned request
            # acts in its signer's account, as any other request does.
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = call.account
        started = cloudtrail.now()
        try:
            status, headers, body = self.answer(call, environ)
        except AwsError as err:
            cloudtrail.observe(call, started, err.status, error=(err.code, err.message))
            raise
        cloudtrail.observe(call, started, status, body)
        return respond(start_response, status, headers, body)

    def answer(self, call, environ):
        """The (status, headers, body) of an authenticated AWS call."""
        if call.service == "sts" and call.operation == "AssumeRole":
            identity.check_assume_role(call, trust=not patches.Settings.policies)
        hidden: list[str] = []
        if patches.Settings.policies:
            hidden = self.authorize(call)
        if call.service == "sts" and call.operation == "GetCallerIdentity" \
                and identity.profile_session(call):
            return identity.get_caller_identity(call)
        if ebs.handles(call):
            if call.operation == "ListSnapshotBlocks":
                return ebs.list_snapshot_blocks(call)
            corrupt = environ.get("forensnap.corrupt", False)
            return ebs.get_snapshot_block(call, corrupt=corrupt)
        if cloudtrail.handles(call):
            return cloudtrail.answer(call)
        if ssm.handles(call):
            answered = ssm.answer(call)
            if answered is not None:
                return answered
        if call.service == "s3":
            swallowed = ssm.swallow_upload(call)
            if swallowed is not None:
                return swallowed
            s3checks.before(call)
            if call.operation == "GetObjectRetention":
                return s3checks.get_object_retention(call)
        status, headers, body = self.run_moto(environ)
        status, headers, body = cloudtrail.after_moto(call, status, headers, body)
        if environ.get("forensnap.duplicate") and status == 200:
            queues.redeliver(call, body)
        if call.service == "s3":
            status, headers, body = s3checks.after(call, status, headers, body)
            if environ.get("forensnap.corrupt") and call.operation == "UploadPart" and status == 200:
                headers = [(k, _other_checksum(v) if k.lower().startswith("x-amz-checksum-")
                            and k.lower() != "x-amz-checksum-type" else v) for k, v in headers]
        if patches.Settings.policies and call.service == "ec2" and status < 300:
            refused = authz.deferred_refusal()
            if refused:
                patches.fail_new_snapshots(call, body, refused)
        if hidden:
            headers = [(k, v) for k, v in headers if k.lower() not in hidden]
        if call.method != "HEAD":  # HEAD keeps moto's Content-Length of the object
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        return status, headers, body

    @staticmethod
    def authorize(call) -> list[str]:
        """Refuse the request as AWS would when the stored policies do not allow it; returns the
        response headers the caller may not see."""
        principal = identity.caller_arn(call)
        snapshot = re.match(r"^/snapshots/([^/]+)/", call.path) if call.service == "ebs" else None
        decision, hidden = authz.authorize_request(call, principal, call.account,
                                                   snapshot.group(1) if snapshot else None)
        if decision.allowed:
            return hidden
        status, code = {
            "s3": (403, "AccessDenied"),
            "ec2": (403, "UnauthorizedOperation"),
            "kms": (400, "AccessDeniedException"),
            "ebs": (403, "AccessDeniedException"),
            "sts": (403, "AccessDenied"),
            "sqs": (403, "AccessDenied"),
            "dynamodb": (400, "AccessDeniedException"),
            "events": (400, "AccessDeniedException"),
            "cloudtrail": (400, "AccessDeniedException"),
            "ssm": (400, "AccessDeniedException"),
        }.get(call.service, (403, "AccessDenied"))
        raise AwsError(status, code, f"User: {principal} is not authorized {decision.reason}")

    def run_moto(self, environ):
        captured = {}

        def start(status, headers, exc_info=None):
            captured["status"], captured["headers"] = int(status.split()[0]), headers

        chunks = self.moto(environ, start)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], list(captured["headers"]), body

    @staticmethod
    def drop(environ):
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        raise ConnectionAbortedError("connection dropped by fault injection")

    def reset_extension(self) -> None:
        REGISTRY.clear()
        FAULTS.clear()
        clock.reset()
        identity.forget_all()
        patches.Settings.update({"snapshot_seconds": 0, "copy_seconds": 0, "policies": False})
        authz.reset()
        eventbridge.reset()
        cloudtrail.reset()
        trails.reset()
        ssm.reset()

    @staticmethod
    def fixed_access_key(payload: dict) -> dict:
        """Give an IAM user an access key with a chosen id and secret, so that a checked-in
        config (config/local.toml) can name the local world's operator credentials."""
        from moto.iam.models import iam_backends

        backend = iam_backends[payload["account"]]["aws"]
        key = backend.create_access_key(payload["user_name"])
        backend.access_keys.pop(key.physical_resource_id, None)
        key.access_key_id = payload["access_key_id"]
        key.secret_access_key = payload["secret_access_key"]
        backend.access_keys[key.physical_resource_id] = key
        return {"access_key_id": key.access_key_id}

    # --- control API ---------------------------------------------------------------------------

    def control(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            payload = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            result = self.control_action(method, path, payload)
            status = 200
        except (ValueError, KeyError, TypeError) as err:
            result, status = {"error": f"{type(err).__name__}: {err}"}, 400
        body = json.dumps(result).encode()
        return respond(start_response, status, [("Content-Type", "application/json")], body)

    def control_action(self, method: str, path: str, payload: dict):
        name = path[len("/_forensnap/"):].strip("/")
        if name == "health":
            return {"ok": True, "moto": MOTO_VERSION, "pid": os.getpid()}
        if name == "volumes" and method == "POST":
            content = load(payload["image"], payload.get("size_gib"))
            REGISTRY.set_volume(payload["volume_id"], content)
            return {"volume_id": payload["volume_id"], "size_gib": content.size_gib,
                    "data_blocks": len(content.blocks)}
        if name == "access-keys" and method == "POST":
            return self.fixed_access_key(payload)
        if name == "faults":
            if method == "POST":
                return FAULTS.add(payload).to_json()
            if method == "DELETE":
                FAULTS.clear()
            return {"rules": FAULTS.list()}
        if name == "instance-profile" and method == "POST":
            arn = identity.act_as_role(payload["access_key_id"], payload["account"],
                                       payload["role_name"], payload.get("session", "i-forensnap"))
            return {"principal": arn}
        if name == "unused-grants" and method == "POST":
            return {"unused": authz.grants_unused(payload["roles"])}
        if name == "authorizations":
            if method == "DELETE":
                authz.reset()
            return {"decisions": authz.log_snapshot()}
        if name == "deliveries" and method == "GET":
            return {"failed": list(eventbridge.FAILED_DELIVERIES)}
        if name == "clock" and method == "POST":
            clock.advance(float(payload.get("advance_seconds", 0)))
            return {"offset_seconds": clock.offset_seconds()}
        if name == "settings":
            if method == "POST":
                patches.Settings.update(payload)
            return patches.Settings.to_json()
        if name == "cloudtrail/seed" and method == "POST":
            return trails.seed(payload)
        if name == "cloudtrail/deliver" and method == "POST":
            return trails.deliver()
        if name == "cloudtrail/tamper" and method == "POST":
            return trails.tamper(payload)
        if name == "ssm/instances" and method == "POST":
            return ssm.register(payload)
        if name == "ssm/behaviour" and method == "POST":
            return ssm.set_behaviour(payload)
        if name == "ssm/commands" and method == "GET":
            return {"commands": ssm.commands()}
        if name == "reset" and method == "POST":
            from moto.moto_api._internal import moto_api_backend

            moto_api_backend.reset()
            self.reset_extension()
            return {"reset": True}
        raise KeyError(f"no control endpoint {method} /_forensnap/{name}")


def subject(call) -> str:
    """What a fault rule's ``match`` is searched in: operation, path, query and form body."""
    text = f"{call.operation} {call.path}"
    query = call.environ.get("QUERY_STRING", "")
    if query:
        text += f"?{query}"
    if call.params:
        text += "&" + call.body.decode("utf-8", "replace")
    return text


def client_process(environ) -> tuple[int, str] | None:
    """(pid, name) of the process that sent the request, if it is on this machine."""
    pid = killer.owner(environ)
    if pid is None:
        return None
    name = killer.name_of(pid)
    return (pid, name) if name is not None and not killer.gone(pid) else None


def make_world_server(host: str, port: int):
    """A threaded werkzeug server for the world, logging requests only at debug level."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):
            log.debug("%s %s %s", self.command, self.path, code)

    return make_server(host, port, World(), threaded=True, request_handler=QuietHandler)


def serve(host: str, port: int, parent_pid: int | None, ready_file: str | None) -> None:
    """Run the world until SIGTERM/SIGINT (or until ``parent_pid`` exits)."""
    server = make_world_server(host, port)
    url = f"http://{host}:{server.server_port}"
    stop = threading.Event()

    def shutdown(*_):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid, shutdown), daemon=True).start()
    if ready_file:
        with open(ready_file + ".tmp", "w") as handle:
            handle.write(url + "\n")
        os.replace(ready_file + ".tmp", ready_file)
    print(f"FORENSNAP_WORLD_READY {url}", flush=True)
    server.serve_forever()


def _watch_parent(pid: int, shutdown) -> None:
    """Stop with the test process that started us, so no world outlives its tests."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except OSError:
            shutdown()
            return
        if os.getppid() == 1 and pid != 1:
            shutdown()
            return


def main_serve(argv) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="forensnap_world serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--ready-file")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the local AWS world listens on loopback only")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    serve(args.host, args.port, args.parent_pid, args.ready_file)


def _other_checksum(value: str) -> str:
    """A checksum echo that is not the part's: the same length, one character changed."""
    if not value:
        return value
    first = "B" if value[0] != "B" else "C"
    return first + value[1:]

