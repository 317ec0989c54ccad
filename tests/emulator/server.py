#!/usr/bin/env python3
"""drflow's local AWS emulator: moto 5.2.5 in server mode, in-process, plus extensions.

    python server.py --port 0 --port-file PATH [--pending-describes N] [--job-describes N] [--status-describes N]

One endpoint on 127.0.0.1 serves every service and region (moto picks the backend from the
SigV4 credential scope). Every request passes through `Emulator`, a WSGI middleware in front
of moto's dispatcher that logs the call, injects faults (errors, latency, lost responses: the work
done but the answer replaced by an error or a dropped connection; optionally with a seeded
probability) and runs the extensions (emu_backup: Backup jobs, recovery points with their lifecycle; emu_plans:
Backup plan selections; emu_hooks:
SNS TopicArn checks and subscription counts, pending AMIs, CreateImage
snapshot tags, CopyImage ClientToken, instance status checks, SSM aws:ec2:image, CloudFormation
{{resolve:ssm}} incl. via Fn::Sub, update detection, EC2 instance updates, failed creates rolled back,
ClientRequestToken retries; emu_accounts / emu_iam / emu_sharing / emu_vaults / emu_kms: each call acts as an
account (12-digit access key ids, AssumeRole sessions), AssumeRole trust policies, role sessions held to their
identity policies, SimulatePrincipalPolicy, AMIs shared and copied across accounts, EBS encryption of copies,
cross-account Backup copies, KMS reads across accounts; emu_sfn: Step Functions executions whose SDK tasks call this server;
emu_sfn_cfn: CloudFormation state machines with DefinitionSubstitutions; emu_lambda: Python Lambda functions invoked
without Docker). The calls log keeps each call's parameters as sent. A NotImplementedError inside moto
answers 400 EmulatorNotImplemented (not retried by clients). Control API under /_drflow/ (see
README.md). Requests are served on threads, but all moto work happens under one lock, so moto only
ever runs one at a time; injected latency is slept outside the lock.
"""

from __future__ import annotations

import os

os.environ.pop("MOTO_ACCOUNT_ID", None)  # it would pin every request to one account: emu_accounts picks it per call
os.environ["MOTO_ENABLE_AMI_VALIDATION"] = "true"  # RunInstances rejects unknown AMIs

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any, Callable  # noqa: E402
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit  # noqa: E402

from moto import __version__ as MOTO_VERSION  # noqa: E402
from moto.core.exceptions import ServiceException  # noqa: E402
from moto.moto_api._internal.models import moto_api_backend  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

import emu_accounts  # noqa: E402
import emu_backup  # noqa: E402
import emu_hooks  # noqa: E402
import emu_iam  # noqa: E402
import emu_kms  # noqa: E402
import emu_lambda  # noqa: E402
import emu_plans  # noqa: E402
import emu_sfn  # noqa: E402
import emu_sfn_cfn  # noqa: E402
import emu_sharing  # noqa: E402
import emu_snapshots  # noqa: E402
import emu_vaults  # noqa: E402
from emu_common import ACCOUNT_ID, STATE, ApiError, Fault, Reply, aws_error, protocol_of, service_model  # noqa: E402

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

# SNS operations that take a TopicArn (checked as AWS does: emu_hooks.before_sns_topic_arn)
SNS_TOPIC_OPERATIONS = ("Publish", "Subscribe", "GetTopicAttributes", "SetTopicAttributes",
                        "ListSubscriptionsByTopic", "DeleteTopic", "AddPermission", "RemovePermission",
                        "GetDataProtectionPolicy", "PutDataProtectionPolicy")

# (service, operation) -> hooks run, in order, before moto / after moto (with the HTTP status; the reply is
# call.response). A before hook may answer the call itself by setting call.reply (moto and the later
# before hooks are then not run; the after hooks are).
BEFORE: dict[tuple[str, str], tuple[Callable[[Any], None], ...]] = {
    ("ec2", "DescribeImages"): (emu_hooks.before_describe_images,),
    ("ec2", "CopyImage"): (emu_hooks.before_copy_image, emu_hooks.before_copy_image_tags,
                           emu_sharing.before_copy_image_access),
    ("ec2", "DeregisterImage"): (emu_hooks.before_deregister_image,),
    ("ec2", "DescribeInstanceStatus"): (emu_hooks.before_describe_instance_status,),
    ("ssm", "PutParameter"): (emu_hooks.before_put_parameter,),
    ("cloudformation", "CreateStack"): (emu_hooks.before_stack_token, emu_hooks.before_stack_change),
    ("cloudformation", "UpdateStack"): (emu_hooks.before_stack_token, emu_hooks.before_stack_change),
    ("cloudformation", "DeleteStack"): (emu_hooks.before_stack_token,),
    ("cloudformation", "CreateChangeSet"): (emu_hooks.before_stack_change,),
    ("cloudformation", "ExecuteChangeSet"): (emu_hooks.before_execute_change_set,),
    **{("sns", op): (emu_hooks.before_sns_topic_arn,) for op in SNS_TOPIC_OPERATIONS},
    ("sns", "GetTopicAttributes"): (emu_hooks.before_sns_topic_arn, emu_hooks.before_get_topic_attributes),
    ("sts", "AssumeRole"): (emu_accounts.before_assume_role,),
    ("ec2", "ModifyImageAttribute"): (emu_sharing.before_modify_image_attribute,),
    ("ec2", "ModifySnapshotAttribute"): (emu_sharing.before_modify_snapshot_attribute,),
    ("iam", "SimulatePrincipalPolicy"): (emu_iam.before_simulate_principal_policy,),
    ("kms", "DescribeKey"): (emu_kms.before_describe_key,),
    ("kms", "ListGrants"): (emu_kms.before_list_grants,),
    ("states", "CreateStateMachine"): (emu_sfn.before_state_machine_definition,),
    ("states", "UpdateStateMachine"): (emu_sfn.before_state_machine_definition,),
    ("lambda", "Invoke"): (emu_lambda.before_invoke,),
}
AFTER: dict[tuple[str, str], tuple[Callable[[Any, int], None], ...]] = {
    ("ec2", "CopyImage"): (emu_hooks.after_copy_image, emu_hooks.after_copy_image_tags,
                           emu_sharing.after_copy_image_encryption),
    ("ssm", "PutParameter"): (emu_hooks.after_put_parameter,),
    ("cloudformation", "CreateStack"): (emu_hooks.after_stack_change, emu_hooks.after_stack_token),
    ("cloudformation", "UpdateStack"): (emu_hooks.after_stack_change, emu_hooks.after_stack_token),
    ("cloudformation", "DeleteStack"): (emu_hooks.after_stack_token,),
    ("cloudformation", "CreateChangeSet"): (emu_hooks.after_stack_change,),
    ("cloudformation", "ExecuteChangeSet"): (emu_hooks.after_execute_change_set,),
}


# ---------------------------------------------------------------- request parsing

_routes: dict[str, list[tuple[str, re.Pattern[str], list[str], int, str]]] = {}


def rest_routes(service: str) -> list[tuple[str, re.Pattern[str], list[str], int, str]]:
    """(method, path regex, required query keys, literal length, operation) from botocore's model."""
    if service not in _routes:
        table = []
        for name, op in ((service_model(service) or {}).get("operations") or {}).items():
            path, _, query = op["http"]["requestUri"].partition("?")
            pattern, literal = "", 0
            for part in re.split(r"(\{[^}]+\})", path.rstrip("/")):
                if part.startswith("{"):
                    key = re.sub(r"\W", "_", part.strip("{}+"))
                    pattern += f"(?P<{key}>.+)" if part.endswith("+}") else f"(?P<{key}>[^/]+)"
                else:
                    pattern += re.escape(part)
                    literal += len(part)
            keys = [kv.split("=")[0] for kv in query.split("&") if kv]
            table.append((op["http"]["method"], re.compile(pattern + "$"), keys, literal, name))
        _routes[service] = sorted(table, key=lambda r: -r[3])
    return _routes[service]


class Call:
    """One AWS request: who it is for, and its (replaceable) body."""

    def __init__(self, environ: dict[str, Any]):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.path = environ.get("PATH_INFO", "")
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            self.body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            self.body = stream.read()
        else:
            self.body = b""
        self._set_body(self.body)
        self.path_params: dict[str, str] = {}
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        self.region, self.service = scope.groups() if scope else (None, None)
        self.access_key = emu_accounts.access_key_of(environ.get("HTTP_AUTHORIZATION", ""))
        self.account = ACCOUNT_ID  # set by Emulator (under the lock: it reads moto's IAM)
        self.protocol = self._protocol() if self.service else ""
        self.operation = self._operation() if self.service else ""
        # what the client sent, for the calls log (before any hook rewrites the body)
        self.request = self._request() if self.service else None

    def _set_body(self, body: bytes) -> None:
        self.body = body
        self.environ["wsgi.input"] = io.BytesIO(body)
        self.environ["CONTENT_LENGTH"] = str(len(body))
        self.environ.pop("HTTP_TRANSFER_ENCODING", None)
        self.environ.pop("wsgi.input_terminated", None)

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)

    def form(self) -> list[tuple[str, str]]:
        """Query-protocol parameters: the query string plus a form-encoded body."""
        pairs = self.query()
        if self.environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            pairs += parse_qsl(self.body.decode(), keep_blank_values=True)
        return pairs

    def set_form(self, pairs: list[tuple[str, str]]) -> None:
        """Replace the parameters (query string ones included) with a form-encoded body."""
        self.environ["QUERY_STRING"] = ""
        self._set_body(urlencode(pairs).encode())

    def set_json(self, doc: dict[str, Any]) -> None:
        self._set_body(json.dumps(doc).encode())

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.body or b"{}")
        except ValueError:
            raise ApiError("SerializationException", "Request body is not valid JSON.")
        return doc if isinstance(doc, dict) else {}

    def raw_path(self) -> str:
        """The path as sent, still percent-encoded (PATH_INFO is decoded: a label such as a recovery point ARN,
        sent with its "/" as %2F, would otherwise split into two path segments)."""
        raw = self.environ.get("RAW_URI") or self.environ.get("REQUEST_URI") or ""
        if not raw:
            return quote(self.path)
        if not raw.startswith("/"):  # absolute form: http://host/path
            raw = urlsplit(raw).path or "/"
        return raw.split("?", 1)[0]

    def _protocol(self) -> str:
        """The protocol the request came in: the service's, except that a form-encoded `Action=...` request
        without X-Amz-Target to a JSON service is the query protocol (SQS takes both)."""
        protocol = protocol_of(self.service)
        if protocol == "json" and not self.environ.get("HTTP_X_AMZ_TARGET") and dict(self.form()).get("Action"):
            return "query"
        return protocol

    def _operation(self) -> str:
        target = self.environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return target.rsplit(".", 1)[-1]
        if self.protocol in ("query", "ec2"):
            return dict(self.form()).get("Action", "")
        query_keys = {k for k, _ in self.query()}
        path = self.raw_path().rstrip("/")
        for method, pattern, keys, _, name in rest_routes(self.service):
            match = pattern.match(path)
            if method == self.method and match and all(k in query_keys for k in keys):
                self.path_params = {k: unquote(v) for k, v in match.groupdict().items()}
                return name
        return ""

    def _json_or_none(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return None

    def _request(self) -> Any:
        """The call's parameters as sent: query / EC2 protocol: the form parameters as a flat object
        ({"Action": "Publish", "TopicArn": ..., "MessageAttributes.entry.1.Name": ...}); JSON: the body;
        REST-JSON: the body's members plus those sent in the path and query string, under their member
        names as in the API reference ({"BackupJobId": ...}); None for other protocols or a body that is
        not JSON."""
        if self.protocol in ("query", "ec2"):
            return dict(self.form())
        if self.protocol == "json":
            return self._json_or_none()
        if self.protocol != "rest-json":
            return None
        model = service_model(self.service) or {}
        op = (model.get("operations") or {}).get(self.operation) or {}
        shapes = model.get("shapes") or {}
        shape = shapes.get((op.get("input") or {}).get("shape", "")) or {}
        members = shape.get("members") or {}
        doc = self._json_or_none()
        if shape.get("payload"):  # the body is one member (Lambda Invoke's Payload: the event)
            doc = {shape["payload"]: doc} if self.body else {}
        if not isinstance(doc, dict):
            return doc
        query: dict[str, list[str]] = {}
        for key, value in self.query():
            query.setdefault(key, []).append(value)
        for name, member in members.items():
            where, wire = member.get("location"), member.get("locationName", name)
            kind = (shapes.get(member.get("shape", "")) or {}).get("type")
            header = self.environ.get("HTTP_" + wire.upper().replace("-", "_")) if where == "header" else None
            if header is not None:
                doc[name] = header
            elif where == "uri" and re.sub(r"\W", "_", wire) in self.path_params:
                doc[name] = self.path_params[re.sub(r"\W", "_", wire)]
            elif where == "querystring" and wire in query:
                values = query[wire]
                if kind == "list":
                    doc[name] = values
                elif kind in ("integer", "long"):
                    doc[name] = int(values[0]) if re.fullmatch(r"-?\d+", values[0]) else values[0]
                elif kind == "boolean":
                    doc[name] = values[0].lower() == "true"
                else:
                    doc[name] = values[0]
        return doc


# ---------------------------------------------------------------- the middleware


def drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without writing a byte of response. Raises a ConnectionError,
    which werkzeug's request handler takes for a connection the client dropped (it writes nothing)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("drflow emulator: response dropped (fault)")


class Emulator:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_drflow/"):
            try:
                return control(environ)(start_response)
            except (ValueError, KeyError, TypeError) as e:
                return Reply.json(400, {"error": f"bad control request: {e!r}"})(start_response)
        call = Call(environ)
        if call.service is None:  # unsigned: moto's own API, metadata endpoint, ...
            with STATE.lock:
                return self.run_moto(environ)(start_response)
        with STATE.lock:
            call.account = emu_accounts.caller_account(call.access_key)
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = call.account  # moto's own handlers act as that account
            entry = {"service": call.service, "operation": call.operation, "region": call.region,
                     "account": call.account, "time": time.time(), "status": None, "lost": False,
                     "request": call.request}
            STATE.calls.append(entry)
            hits = [f for f in STATE.faults if f.fires(call.service, call.operation, call.region, call.account)]
        delay = sum(f.latency_ms for f in hits) / 1000.0
        if delay:
            time.sleep(delay)  # outside the lock: other calls go on meanwhile
        fault = next((f for f in hits if f.code or f.loses), None)  # the first one added decides
        if fault is not None and not fault.loses:  # an error instead of the work
            reply = aws_error(call.service, fault.code, fault.message or fault.code, fault.status, call.protocol)
        else:
            with STATE.lock:
                reply = self.dispatch(call)
            job = getattr(call, "job", None)  # work a hook left to do outside the lock (a Lambda function's run)
            if job is not None:
                try:
                    reply = job()
                except Exception as e:
                    traceback.print_exc()
                    reply = aws_error(call.service, "InternalFailure", f"emulator error: {e!r}", 500, call.protocol)
                if "X-Amz-Function-Error" in reply.headers:
                    entry["function_error"] = reply.headers["X-Amz-Function-Error"]
            if fault is not None:  # the work is done (state changed as without the fault), its answer lost
                entry.update(lost=True, real_status=reply.status)
                if fault.drop:
                    drop_connection(environ)  # the logged status stays null
                reply = aws_error(call.service, fault.code, fault.message or fault.code, fault.status, call.protocol)
        entry["status"] = reply.status
        return reply(start_response)

    def dispatch(self, call: Call) -> Reply:
        key = (call.service, call.operation)
        STATE.account = call.account
        emu_backup.settle()  # seeded jobs end with time, whoever looks first
        try:
            emu_iam.enforce(call)  # a role session may do what its role's identity policies allow
            for hook in BEFORE.get(key, ()):
                hook(call)
                if getattr(call, "reply", None) is not None:
                    break
            reply = getattr(call, "reply", None)  # set when a before hook answered the call itself
            if reply is None:
                if call.service == "backup" and call.operation in emu_backup.HANDLED:
                    reply = emu_backup.handle(call)
                elif call.service == "backup" and call.operation in emu_plans.HANDLED:
                    reply = emu_plans.handle(call)
                elif call.service == "backup" and call.operation in emu_vaults.HANDLED:
                    reply = emu_vaults.handle(call)
                else:
                    reply = self.run_moto(call.environ)
            call.response = reply
            for after in AFTER.get(key, ()):
                after(call, reply.status)
            return reply
        except ApiError as e:
            return aws_error(call.service, e.code, e.message, e.status, call.protocol)
        except ServiceException as e:  # a moto error raised inside an extension
            return aws_error(call.service, e.code, e.message, 400, call.protocol)
        except NotImplementedError as e:
            # A gap in moto (or the emulator), not a transient failure: a 4xx that clients do not retry.
            traceback.print_exc()
            detail = f": {e}" if str(e) else ""
            return aws_error(call.service, "EmulatorNotImplemented",
                             f"{call.service} {call.operation or '(unknown operation)'} is not implemented by the "
                             f"drflow emulator (moto {MOTO_VERSION}) for this request{detail}", 400, call.protocol)
        except Exception as e:
            if hasattr(e, "error_type"):  # moto's RESTError family
                return aws_error(call.service, e.error_type, e.message, getattr(e, "code", 400), call.protocol)
            traceback.print_exc()
            return aws_error(call.service, "InternalFailure", f"emulator error: {e!r}", 500, call.protocol)

    def run_moto(self, environ: dict[str, Any]) -> Reply:
        """Run moto's app to completion and buffer its response (we hold the lock)."""
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = status, headers
            return lambda data: None

        result = self.moto(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        headers = {k: v for k, v in seen["headers"] if k.lower() != "content-length"}
        return Reply(int(seen["status"].split()[0]), body, headers)


# ---------------------------------------------------------------- control API

# settings of POST /_drflow/config -> their least value
CONFIG = {"pending_describes": 0, "job_describes": 1, "status_describes": 0}
IMPAIRED_CHECKS = {"both": {"instance", "system"}, "instance": {"instance"}, "system": {"system"}}


def _as_query(value: Any) -> Any:
    """A calls-log value as a query string gives it (?lost=true)."""
    return str(value).lower() if isinstance(value, bool) else value


FAULT_FIELDS = {"service", "operation", "operations", "region", "account", "nth", "count", "code", "message", "status",
                "latency_ms", "probability", "seed", "lose_response", "drop"}
LOST_CODE, LOST_MESSAGE = "InternalFailure", "We encountered an internal error. Please try again."


def parse_fault(body: Any) -> Fault:
    """A Fault from the body of POST /_drflow/faults; ValueError (-> 400) when it is malformed."""
    if not isinstance(body, dict):
        raise ValueError("a fault is a JSON object")
    unknown = sorted(set(body) - FAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fault fields {unknown}; known: {sorted(FAULT_FIELDS)}")

    def text(key: str) -> str | None:
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{key} must be a non-empty string")
        return value

    def flag(key: str) -> bool:
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value

    operations = body.get("operations")
    if operations is not None:
        if not isinstance(operations, list) or not operations or \
                not all(isinstance(o, str) and o for o in operations):
            raise ValueError("operations must be a non-empty list of operation names or globs")
        if "operation" in body:
            raise ValueError('give "operation" or "operations", not both')
    probability = body.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
        raise ValueError("probability must be a number from 0 to 1")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer")
    nth, count, latency_ms = int(body.get("nth", 1)), int(body.get("count", 1)), int(body.get("latency_ms", 0))
    if nth < 1 or count < 0 or latency_ms < 0:
        raise ValueError("nth must be at least 1, count and latency_ms at least 0")
    lose_response, drop = flag("lose_response"), flag("drop")
    code, message, status = text("code"), body.get("message", ""), body.get("status")
    if drop and (code or message or status is not None):
        raise ValueError("a dropped connection answers nothing: drop takes no code, message or status")
    if lose_response and not drop and not code:
        code, message = LOST_CODE, message or LOST_MESSAGE
    if not code and not latency_ms and not drop:
        raise ValueError("a fault needs a code, a latency_ms, lose_response or drop")
    if status is None and not drop:
        status = 500 if lose_response else 400
    account = text("account")
    if account is not None and not re.fullmatch(r"\d{12}", account):
        raise ValueError("account must be a 12-digit account id")
    return Fault(service=text("service"), operation=text("operation"), operations=operations,
                 region=text("region"), account=account, nth=nth, count=count, code=code, message=str(message),
                 status=int(status) if status is not None else None,  # type: ignore[arg-type]
                 latency_ms=latency_ms, probability=float(probability), seed=seed,
                 lose_response=lose_response, drop=drop)


def control(environ: dict[str, Any]) -> Reply:
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"].rstrip("/")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if path == "/_drflow/reset" and method == "POST":
        emu_lambda.stop_functions()  # a function still running would call the emulator after the reset
        emu_sfn.stop_executions()  # waits for their threads outside the lock: their calls in flight need it
    with STATE.lock:
        # control requests that touch an account's resources name it ("account", default 123456789012)
        STATE.account = body.get("account") or ACCOUNT_ID if isinstance(body, dict) else ACCOUNT_ID
        if not re.fullmatch(r"\d{12}", STATE.account):
            return Reply.json(400, {"error": "account must be a 12-digit account id"})
        if path == "/_drflow/health":
            return Reply(200, "ok", {"Content-Type": "text/plain"})
        if path == "/_drflow/faults" and method == "POST":
            try:
                fault = parse_fault(body)
            except ValueError as e:
                return Reply.json(400, {"error": str(e)})
            STATE.faults.append(fault)
            return Reply.json(200, fault.describe())
        if path == "/_drflow/faults" and method == "GET":
            return Reply.json(200, [f.describe() for f in STATE.faults])
        if path == "/_drflow/faults" and method == "DELETE":
            STATE.faults.clear()
            return Reply.json(200, {})
        if path == "/_drflow/fail-next-job" and method == "POST":
            if body.get("kind") not in ("backup", "copy"):
                return Reply.json(400, {"error": 'kind must be "backup" or "copy"'})
            STATE.fail_next[body["kind"]] = body.get("message") or "Job failed (injected by the emulator)."
            return Reply.json(200, {})
        if path == "/_drflow/calls" and method == "GET":
            calls = [c for c in STATE.calls if all(_as_query(c.get(k)) == v for k, v in query.items())]
            return Reply.json(200, calls)
        if path == "/_drflow/calls" and method == "DELETE":
            STATE.calls.clear()
            return Reply.json(200, {})
        if path == "/_drflow/config" and method == "POST":
            for key, least in CONFIG.items():
                if key in body:
                    setattr(STATE, key, max(least, int(body[key])))
        if path == "/_drflow/config" and method in ("GET", "POST"):
            return Reply.json(200, {key: getattr(STATE, key) for key in CONFIG})
        if path == "/_drflow/impair-instance" and method == "POST":
            instance_id, image_id = body.get("instance_id"), body.get("image_id")
            checks = IMPAIRED_CHECKS.get(body.get("check", "both"))
            if bool(instance_id) == bool(image_id):
                return Reply.json(400, {"error": 'give one of "instance_id" or "image_id"'})
            if checks is None:
                return Reply.json(400, {"error": 'check must be "instance", "system" or "both"'})
            if instance_id:
                if emu_hooks.find_instance(instance_id) is None:
                    return Reply.json(404, {"error": f"no instance {instance_id} in any region"})
                STATE.impaired_instances.setdefault(instance_id, set()).update(checks)
            else:
                if not re.fullmatch(r"ami-[0-9a-f]{8,17}", str(image_id)):
                    return Reply.json(400, {"error": f"not an AMI id: {image_id!r}"})
                STATE.impaired_images.setdefault(image_id, set()).update(checks)
        if path == "/_drflow/impair-instance" and method == "DELETE":
            STATE.impaired_instances.clear()
            STATE.impaired_images.clear()
        if path == "/_drflow/impair-instance" and method in ("GET", "POST", "DELETE"):
            return Reply.json(200, {"instances": {k: sorted(v) for k, v in sorted(STATE.impaired_instances.items())},
                                    "images": {k: sorted(v) for k, v in sorted(STATE.impaired_images.items())}})
        if path == "/_drflow/seed-plan-history" and method == "POST":
            try:
                return Reply.json(200, emu_backup.seed_history(body))
            except ApiError as e:
                return Reply.json(400, {"error": f"{e.code}: {e.message}"})
        if path == "/_drflow/image-age" and method == "POST":
            region, image_id, age = body.get("region"), body.get("image_id"), body.get("age_seconds")
            at = body.get("creation_date")
            if isinstance(at, str) and isinstance(region, str) and isinstance(image_id, str) and age is None:
                try:
                    ami = emu_hooks.set_image_date(region, image_id, at)
                except ValueError:
                    return Reply.json(400, {"error": f"creation_date {at!r} is not an ISO 8601 UTC time"})
                if ami is None:
                    return Reply.json(404, {"error": f"no image {image_id} in {region}"})
                return Reply.json(200, {"image_id": image_id, "creation_date": ami.creation_date.isoformat()})
            if not isinstance(region, str) or not isinstance(image_id, str) or not isinstance(age, (int, float)) \
                    or isinstance(age, bool) or age < 0:
                return Reply.json(400, {"error": 'give "region", "image_id" and "age_seconds" (a number, >= 0)'})
            ami = emu_hooks.set_image_age(region, image_id, float(age))
            if ami is None:
                return Reply.json(404, {"error": f"no image {image_id} in {region}"})
            return Reply.json(200, {"image_id": image_id, "creation_date": ami.creation_date.isoformat()})
        if path == "/_drflow/share-snapshot" and method == "POST":
            region, image_id, source = body.get("region"), body.get("image_id"), body.get("snapshot_of")
            if not all(isinstance(v, str) for v in (region, image_id, source)):
                return Reply.json(400, {"error": 'give "region", "image_id" and "snapshot_of"'})
            shared = emu_snapshots.share(region, image_id, source)
            if shared is None:
                return Reply.json(404, {"error": f"no image {image_id} or {source} (with a snapshot) in {region}"})
            return Reply.json(200, shared)
        if path == "/_drflow/reset" and method == "POST":
            moto_api_backend.reset()
            STATE.reset()
            emu_backup.reset()
            emu_plans.reset()
            emu_vaults.reset()
            emu_sfn.reset()
            emu_lambda.reset()
            return Reply.json(200, {})
        if path == "/_drflow/sfn":
            return Reply.json(*emu_sfn.control(method, body))
    return Reply.json(404, {"error": f"no control route {method} {path}"})


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="written (atomically) with the port once serving")
    parser.add_argument("--pending-describes", type=int, default=2,
                        help="DescribeImages calls that see a new AMI as pending (default 2)")
    parser.add_argument("--job-describes", type=int, default=1,
                        help="Describe*Job calls that see each of CREATED and RUNNING (default 1)")
    parser.add_argument("--status-describes", type=int, default=0,
                        help="DescribeInstanceStatus calls that see a new instance's checks initializing (default 0)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started the emulator ends (a test binary that shares one "
                             "emulator among its tests has no place to stop it)")
    args = parser.parse_args()

    STATE.pending_describes = max(0, args.pending_describes)
    STATE.job_describes = max(1, args.job_describes)
    STATE.status_describes = max(0, args.status_describes)
    emu_sharing.install_sharing_patches()  # before emu_hooks', which wrap copy_image
    emu_hooks.install_ec2_patches()
    emu_snapshots.install()
    emu_hooks.install_cfn_patches()
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = make_server(args.host, args.port, Emulator(), threaded=True, request_handler=MotoRequestHandler)
    port = server.socket.getsockname()[1]
    emu_sfn.install(port, verbose=args.verbose)  # Step Functions executions; their SDK tasks call this server
    emu_sfn_cfn.install()  # CloudFormation's state machines: DefinitionSubstitutions, in the executing backend
    emu_lambda.install(port)  # Lambda functions run in processes of their own; they call this server

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_parent:
        parent = os.getppid()

        def watch_parent() -> None:
            while os.getppid() == parent:
                time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch_parent, daemon=True).start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"drflow emulator listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if args.port_file and os.path.exists(args.port_file):
            os.unlink(args.port_file)


if __name__ == "__main__":
    main()
