"""Shared state and AWS wire-format helpers for the drflow emulator.

Everything here is touched only while holding STATE.lock (moto is not thread-safe),
except the plain configuration integers.
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import botocore.session

ACCOUNT_ID = "123456789012"  # the default account: any access key that selects no other (see emu_accounts)


@dataclass
class Fault:
    """One injected fault (POST /_drflow/faults). A call matches when its service, operation and region
    pass the filters; from the nth matching call on, each matching call fires the fault with
    `probability` (drawn from the fault's own RNG, seeded by `seed`) until it has fired `count` times
    (0: it never runs out). A firing fault delays the call by `latency_ms` and then answers `code`
    instead of doing the work or, with `lose_response` / `drop`, does the work and loses the answer."""

    service: str | None  # None: every service
    operation: str | None  # a name or a glob (fnmatch: * ? [..]); None: every operation
    region: str | None  # None: every region
    account: str | None = None  # the caller's account id; None: every account
    operations: list[str] | None = None  # names or globs, instead of `operation`
    nth: int = 1
    count: int = 1  # firings before the fault runs out; 0: never
    code: str | None = None
    message: str = ""
    status: int | None = 400  # None for drop
    latency_ms: int = 0
    probability: float = 1.0  # chance that a matching call from the nth on fires the fault
    seed: int | None = None  # of the fault's RNG (chosen at random and reported when not given)
    lose_response: bool = False  # do the work, then answer the error (default 500 InternalFailure)
    drop: bool = False  # do the work, then close the connection without an answer
    seen: int = 0  # matching calls since the fault was added
    hit: int = 0  # calls the fault fired on
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        self._rng = random.Random(self.seed)

    def matches(self, service: str, operation: str, region: str, account: str = ACCOUNT_ID) -> bool:
        if self.service is not None and service != self.service:
            return False
        if self.account is not None and account != self.account:
            return False
        patterns = self.operations if self.operations is not None else (
            [self.operation] if self.operation is not None else None)
        if patterns is not None and not any(fnmatch.fnmatchcase(operation, p) for p in patterns):
            return False
        return self.region is None or region == self.region

    def fires(self, service: str, operation: str, region: str, account: str = ACCOUNT_ID) -> bool:
        """Count a matching call; True when the fault fires on it."""
        if not self.matches(service, operation, region, account):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.count and self.hit >= self.count):
            return False
        if self.probability < 1 and self._rng.random() >= self.probability:
            return False
        self.hit += 1
        return True

    @property
    def loses(self) -> bool:
        """The call is carried out and its answer lost."""
        return self.lose_response or self.drop

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    account: str = ACCOUNT_ID  # the account of the call being served (set per call, under the lock)
    pending_describes: int = 2  # DescribeImages calls that still see a new AMI as pending
    job_describes: int = 1  # Describe*Job calls per CREATED and per RUNNING state
    status_describes: int = 0  # DescribeInstanceStatus calls that still see a new instance's checks initializing
    faults: list[Fault] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: dict[str, str] = field(default_factory=dict)  # kind -> StatusMessage
    # (owner account, region, ami_id) -> DescribeImages calls left that report it pending
    pending_images: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # ("ACCOUNT:REGION", stack name) -> what CloudFormation compares on an update, as of the last successful
    # CreateStack / UpdateStack / ExecuteChangeSet: {"template": body as sent (before any dynamic
    # reference is resolved), "parameters": {key: value as given or defaulted}, "resolved": {key:
    # value of an AWS::SSM::Parameter::Value<...> parameter}}
    stacks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # change set id -> (("ACCOUNT:REGION", stack name), record as above), moved to `stacks` on ExecuteChangeSet
    change_sets: dict[str, tuple[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    # (account, destination region, ClientToken) -> (ImageId, the request's other parameters) of a CopyImage
    copy_tokens: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = field(default_factory=dict)
    # ("ACCOUNT:REGION", stack name, ClientRequestToken) -> the first successful CreateStack / UpdateStack /
    # DeleteStack that used it: {"operation", "stack_id", "reply": its Reply}
    stack_tokens: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # instance id / AMI id (every instance launched from it) -> its status checks reported `impaired`:
    # a subset of {"instance", "system"}
    impaired_instances: dict[str, set[str]] = field(default_factory=dict)
    impaired_images: dict[str, set[str]] = field(default_factory=dict)

    def reset(self) -> None:
        self.account = ACCOUNT_ID
        self.faults.clear()
        self.calls.clear()
        self.fail_next.clear()
        self.pending_images.clear()
        self.stacks.clear()
        self.change_sets.clear()
        self.copy_tokens.clear()
        self.stack_tokens.clear()
        self.impaired_instances.clear()
        self.impaired_images.clear()


STATE = State()


def account() -> str:
    """The account of the call being served: moto's backends are keyed by it (`ec2_backends[account()][region]`)."""
    return STATE.account

_session = botocore.session.get_session()
_protocols: dict[str, str] = {}


def protocol_of(service: str) -> str:
    """botocore protocol of a service by its signing name: ec2, query, json, rest-json, rest-xml."""
    if service not in _protocols:
        try:
            _protocols[service] = _session.get_service_data(service)["metadata"]["protocol"]
        except Exception:
            _protocols[service] = "json"
    return _protocols[service]


def service_model(service: str) -> dict[str, Any] | None:
    try:
        return _session.get_service_data(service)
    except Exception:
        return None


def request_id() -> str:
    return str(uuid.uuid4())


class Reply:
    """A complete HTTP response: status, headers, body."""

    def __init__(self, status: int, body: bytes | str, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = dict(headers or {})

    @classmethod
    def json(cls, status: int, doc: Any, content_type: str = "application/json") -> "Reply":
        return cls(status, json.dumps(doc), {"Content-Type": content_type})

    def __call__(self, start_response: Any) -> list[bytes]:
        reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                   409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
                   503: "Service Unavailable"}
        headers = {"Content-Length": str(len(self.body)), **self.headers}
        start_response(f"{self.status} {reasons.get(self.status, 'Status')}", list(headers.items()))
        return [self.body]


def aws_error(service: str, code: str, message: str, status: int = 400, protocol: str | None = None) -> Reply:
    """An error in the wire format of the service's protocol (or of `protocol`, the one the request came in:
    SQS takes both JSON and query requests), as its SDK parses it."""
    rid = request_id()
    protocol = protocol or protocol_of(service)
    msg = escape(message)
    if protocol == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
                f"<Message>{msg}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>")
        return Reply(status, body, {"Content-Type": "text/xml;charset=UTF-8"})
    if protocol == "query":
        kind = "Receiver" if status >= 500 else "Sender"
        ns = (service_model(service) or {}).get("metadata", {}).get("xmlNamespace", "")
        body = (f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
                f"<Message>{msg}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>")
        return Reply(status, body, {"Content-Type": "text/xml", "x-amzn-RequestId": rid})
    if protocol == "rest-xml":
        body = f"<Error><Code>{escape(code)}</Code><Message>{msg}</Message><RequestId>{rid}</RequestId></Error>"
        return Reply(status, body, {"Content-Type": "application/xml", "x-amz-request-id": rid})
    # json (awsJson1_0/1_1) and rest-json
    json_version = (service_model(service) or {}).get("metadata", {}).get("jsonVersion", "1.1")
    content_type = f"application/x-amz-json-{json_version}" if protocol == "json" else "application/json"
    doc = {"__type": code, "message": message} if protocol == "json" else {"__type": code, "Message": message}
    reply = Reply.json(status, doc, content_type)
    reply.headers.update({"x-amzn-ErrorType": code, "x-amzn-RequestId": rid})
    return reply


class ApiError(Exception):
    """Raised by extension handlers; rendered with aws_error()."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
