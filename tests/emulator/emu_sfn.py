"""Step Functions executions on the drflow emulator: moto's ASL engine (moto.stepfunctions.parser), wired to this server.

moto runs a state machine when its config says `{"stepfunctions": {"execute_state_machine": true}}` (this module
turns that on at start-up). Each execution runs on threads of its own; its AWS SDK tasks
(`arn:aws:states:::aws-sdk:SERVICE:apiAction`) call the emulator over HTTP, signed for the state machine's region, so
they pass through the whole emulator (the calls log, faults, the Backup extension) like any client's calls. The
engine's own bookkeeping (execution status, history) is done on those threads outside STATE.lock, as moto's own
server does; every call it makes to a service takes the lock like any request.

What this module changes in moto's engine (install()):
- SDK tasks call http://127.0.0.1:PORT (moto: http://localhost:$MOTO_PORT), with one cached client per region and
  service (boto3's client creation is not thread-safe; Map and Parallel branches call at the same time);
- error names of failed SDK tasks are AWS's: `ServiceName.ErrorNameException`, the service name in PascalCase
  (`Ssm`, `Ec2`, `Backup`, `Sfn`, `DynamoDb`) where moto writes the lower-case ARN name (`ssm.ParameterNotFound...`);
- an SDK task's answer is JSON as AWS hands it on (timestamps as `2013-08-23T01:02:15.422Z`; moto keeps Python
  datetimes, which its own DescribeExecution then fails to serialise);
- `$$.Execution.StartTime` is such a string too;
- a definite path through an index (`$.Images[0].State`) gives its value, not a one-element list, and an indefinite
  one (`$.Images[0].BlockDeviceMappings[*].Ebs.SnapshotId`) the list of its matches, even of one (moto unwraps it);
- a Distributed Map fails its Map Run past its tolerated failure threshold (moto never does), and an integer
  `ToleratedFailurePercentage` is accepted (moto's grammar wants `50.0`; statelint wants `50`);
- Timestamp* Choice rules read timestamps with fractional seconds (dropping them, as AWS does); moto's are false;
- Wait states and Retry intervals are scaled by `time_scale` (1 = real time, as AWS; tests use less);
- the escapes of an intrinsic function's string (`\\'`, `\\n`, `\\{`, `\\}`, `\\\\`) are read as AWS reads them: moto's
  ASL parser leaves the JSON string's backslash doubled (`\\\\'`), so its intrinsic lexer ended the string at the
  quote and read `\\n` as a backslash and an n; CreateStateMachine reads them first (_hide_escaped_quotes), and
  `States.Format` reads
  `\\{` and `\\}` as literal braces and `\\\\` as a backslash, as AWS documents (moto hands the template to Python's
  str.format, which takes `{"a":1}` for a replacement field);
- SendTaskFailure hands its `cause` on to the failed task (moto's drops it).
Every call is signed with one access key, so it lands in moto's default account -- except a Task with
`Credentials` (`{"RoleArn": ...}`, AWS's cross-account access): as on AWS, the state machine's execution role
assumes that role for the call. The execution role's session is made directly in moto's STS (Step Functions, a
service principal, assumes the execution role; this emulator does not check service principals), then that session
calls this emulator's STS AssumeRole for the task's role, so the role's trust policy must allow the execution role
and the execution role's identity policies must allow sts:AssumeRole on it (emu_accounts, emu_iam); the call is
signed with the keys it hands out, so it lands in the role's account and is held to the role's policies. A role
that cannot be assumed fails the task with `States.TaskFailed` (AWS does not document the name of that error; the
emulator's choice) and STS's message as its cause ("User: arn:aws:sts::ACCT:assumed-role/EXECUTION_ROLE/SESSION is
not authorized to perform: sts:AssumeRole on resource: ROLE_ARN"). The sessions are named after the execution
(AWS does not document the name it uses); no ExternalId is sent (a Task's Credentials have none).
"""

from __future__ import annotations

import base64
import datetime
import importlib
import json
import logging
import re
import sys
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from moto.core.config import default_user_config

from emu_common import ACCOUNT_ID, STATE, service_model

# the modules of moto's engine that call a service through `boto_client_for`
_ENGINE = "moto.stepfunctions.parser.asl"
_CLIENT_USERS = (
    "utils.boto_client",
    "component.state.exec.state_task.service.state_task_service_aws_sdk",
    "component.state.exec.state_task.service.state_task_service_sns",
    "component.state.exec.state_task.service.state_task_service_sqs",
    "component.state.exec.state_task.service.state_task_service_sfn",
    "component.state.exec.state_task.service.state_task_service_dynamodb",
    "component.state.exec.state_task.service.state_task_service_events",
    "component.state.exec.state_task.lambda_eval_utils",
)


class Settings:
    """GET/POST /_drflow/sfn: {"execute": bool, "time_scale": float}."""

    execute: bool = True
    time_scale: float = 1.0


SETTINGS = Settings()
_port = 0
_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """The engine's client for an SDK task: the emulator itself, signed for `region` (the state machine's region,
    or the region of a task ARN that names one), no client-side retries (the state's Retry does that)."""
    key = (region, service)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.session.Session().client(
                service, region_name=region, endpoint_url=f"http://127.0.0.1:{_port}",
                aws_access_key_id="AKIDSTEPFUNCTIONS", aws_secret_access_key="sk",
                config=Config(parameter_validation=False, retries={"total_max_attempts": 1},
                              connect_timeout=60, read_timeout=600))
            _clients[key] = client
    return client


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def pascal_service_name(sfn_service: str) -> str:
    """The service part of an SDK integration's error name: the service id in PascalCase, as the AWS SDK for Java 2.x
    names its clients (SSM -> Ssm, EC2 -> Ec2, DynamoDB -> DynamoDb, ACM PCA -> AcmPca, Backup -> Backup)."""
    boto_name = {"sfn": "stepfunctions", "states": "stepfunctions"}.get(sfn_service, sfn_service)
    service_id = ((service_model(boto_name) or {}).get("metadata") or {}).get("serviceId") or sfn_service
    return "".join(w[:1].upper() + w[1:].lower() for w in _WORD.findall(service_id)) or sfn_service


def _scaled_wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
    """WaitFunction._wait_interval with the time scale; ends early when the execution stops."""
    deadline = time.monotonic() + max(0.0, wait_seconds) * SETTINGS.time_scale
    while env.is_running():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        env.program_state_event.wait(left)


_STOPPING = threading.Event()  # set while a reset stops the executions: their Retry intervals end at once


class _ScaledTime:
    """Stands for the `time` module in the retrier: its sleep is scaled, and cut short by a reset."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        _STOPPING.wait(max(0.0, seconds) * SETTINGS.time_scale)


def aws_json(value: Any) -> Any:
    """An SDK task's answer as Step Functions hands it on: timestamps as ISO-8601 UTC strings with milliseconds
    (`2013-08-23T01:02:15.422Z`), blobs base64-encoded (boto3 gives datetime and bytes, which moto cannot store)."""
    if isinstance(value, dict):
        return {k: aws_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [aws_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        utc = value.astimezone(datetime.timezone.utc) if value.tzinfo else value
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def _session_name(env: Any) -> str:
    """A role session name for the execution: its name, in the characters and length STS accepts."""
    name = env.states.context_object.context_object_data["Execution"]["Name"]
    return (re.sub(r"[^\w+=,.@-]", "-", str(name)) or "drflow-sfn")[:64].ljust(2, "-")


def _as_role(self: Any, env: Any, region: str, service: str, role_arn: str) -> Any:
    """A client for a Task with Credentials: signed with `role_arn`'s credentials, assumed by the execution role
    through this emulator's STS (see the module docstring); a refusal fails the task."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.sts.models import sts_backends

    execution_role = env.aws_execution_details.role_arn
    account = (re.match(r"arn:aws:iam::(\d{12}):", execution_role or "") or [None, ACCOUNT_ID])[1]
    session = _session_name(env)
    with STATE.lock:
        execution = sts_backends[account]["global"].assume_role(
            region_name=region, role_session_name=session, role_arn=execution_role, policy="", duration=3600,
            external_id=None)
    sts = boto3.session.Session().client(
        "sts", region_name=region, endpoint_url=f"http://127.0.0.1:{_port}",
        aws_access_key_id=execution.access_key_id, aws_secret_access_key=execution.secret_access_key,
        aws_session_token=execution.session_token, config=Config(retries={"total_max_attempts": 1}))
    try:
        keys = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    except ClientError as e:
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType)
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        cause = e.response.get("Error", {}).get("Message") or str(e)
        error = StatesErrorNameType.StatesTaskFailed
        raise FailureEventException(failure_event=FailureEvent(
            env=env, error_name=StatesErrorName(typ=error), event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                error=error.to_name(), cause=cause)))) from None
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=f"http://127.0.0.1:{_port}",
        aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}, connect_timeout=60,
                      read_timeout=600))


def _eval_service_task(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                       state_credentials: Any) -> None:
    """StateTaskServiceAwsSdk._eval_service_task, its answer made JSON as AWS makes it (aws_json); a Task with
    Credentials calls as its role (_as_role)."""
    # moto hands every task the execution role as its credentials; only a declared `Credentials` assumes a role
    role_arn = getattr(state_credentials, "role_arn", None) if getattr(self, "credentials", None) else None
    if role_arn:
        client = _as_role(self, env, resource_runtime_part.region, self._get_boto_service_name(), role_arn)
    else:
        client = _client_for(resource_runtime_part.region, self._get_boto_service_name())
    response = getattr(client, self._get_boto_service_action())(**normalised_parameters) or {}
    response.pop("ResponseMetadata", None)
    env.stack.append(aws_json(response))


_INDEFINITE = re.compile(r"\.\.|\*|\[\s*\?|\[[^\]]*[:,][^\]]*\]")


def _definite_extract_json(original: Any) -> Any:
    """extract_json as AWS evaluates a definite path (no `..`, `*`, filter, slice or union): its one value.
    moto answers a list for a path through an index (`$.Images[0].State` -> ["available"]; AWS: "available").
    An indefinite path gives the list of its matches, one match or none included, as the JSONPath implementation
    AWS uses (Jayway) answers an indefinite path: moto gives a single match's value unwrapped when it is not at an
    index (`$.Images[0].BlockDeviceMappings[*].Ebs.SnapshotId` -> "snap-1"; AWS: ["snap-1"])."""
    from jsonpath_ng.ext import parse

    def extract_json(path: str, data: Any) -> Any:
        if _INDEFINITE.search(path) and path.startswith("$"):
            return [m.value for m in parse(path).find(data)]
        value = original(path, data)
        if isinstance(value, list) and not _INDEFINITE.search(path):
            matches = parse(path).find(data)
            if len(matches) == 1:
                return matches[0].value
        return value

    return extract_json


def _map_run_with_threshold(original: Any) -> Any:
    """DistributedIterationComponent._map_run that fails the Map Run as AWS documents (maprun-fail-threshold):
    States.ExceedToleratedFailureThreshold when more items failed (or timed out) than ToleratedFailureCount or a
    greater share than ToleratedFailurePercentage; neither given: any failed item. moto returns null for a failed
    item and never fails the Map Run."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent, FailureEventException)
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType)
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        items = eval_input.map_run_record.item_counter
        failed, total = items.failed.get() + items.timed_out.get(), items.total.get()
        by_count, by_percentage = getattr(self, "_drflow_declared", (False, False))
        exceeded = (failed > eval_input.tolerated_failure_count if by_count else False) or \
            (total > 0 and 100.0 * failed / total > eval_input.tolerated_failure_percentage if by_percentage
             else False) or (failed > 0 and not by_count and not by_percentage)
        if exceeded:
            env.stack.pop()
            error = StatesErrorNameType.StatesExceedToleratedFailureThreshold
            raise FailureEventException(failure_event=FailureEvent(
                env=env, error_name=StatesErrorName(typ=error), event_type=HistoryEventType.ExecutionFailed,
                event_details=EventDetails(executionFailedEventDetails=ExecutionFailedEventDetails(
                    error=error.to_name(),
                    cause=f"The specified tolerated failure threshold was exceeded: {failed} of {total} items "
                          "failed"))))

    return _map_run


def _declare_thresholds(original: Any) -> Any:
    """StateMap.from_state_props that tells its iteration component which thresholds the state declares."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl, ToleratedFailurePercentageDecl)

    def from_state_props(self: Any, state_props: Any) -> None:
        original(self, state_props)
        self.iteration_component._drflow_declared = (
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None)

    return from_state_props


_PERCENTAGE = re.compile(r'("ToleratedFailurePercentage"\s*:\s*)(-?\d+)(?![\d.eE])')


# stand for escapes of an intrinsic function's string until moto's parsers have read it (_unescape_early)
_QUOTE, _LBRACE, _RBRACE, _BACKSLASH = "\ue000", "\ue001", "\ue002", "\ue003"


def _hide_escaped_quotes(value: Any, intrinsic: bool = False) -> Any:
    """A definition's intrinsic functions (values of `Key.$`, `ErrorPath`, `CausePath` starting `States.`) with each
    escaped quote `\\'` as _QUOTE (moto's intrinsic lexer ends a string at `\\'`; AWS reads a quote), and line
    breaks and tabs read (_unescape_early)."""
    if isinstance(value, dict):
        return {k: _hide_escaped_quotes(v, k.endswith(".$") or k in ("ErrorPath", "CausePath"))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_escaped_quotes(v) for v in value]
    if intrinsic and isinstance(value, str) and value.startswith("States."):
        return re.sub(r"\\(.)", _unescape_early, value)
    return value


def _unescape_early(match: Any) -> str:
    """An escape of an intrinsic function's string read before moto's parsers see it: `\\'` as _QUOTE, `\\n`, `\\r`,
    `\\t` as the characters (moto's ASL parser keeps a JSON string's `\\\\` doubled, so its intrinsic parser
    would read `\\n` as a backslash and an n); `\\{`, `\\}`, `\\\\` as stand-ins read back as those escapes, once,
    for States.Format (_format_escaped)."""
    c = match.group(1)
    return {"'": _QUOTE, "n": "\n", "r": "\r", "t": "\t", "{": _LBRACE, "}": _RBRACE, "\\": _BACKSLASH}.get(
        c, match.group(0))


def _text_with_quotes(original: Any) -> Any:
    """Preprocessor._text_of_str with the stand-ins read back: a quote, and `\\{`, `\\}`, `\\\\` once."""

    def _text_of_str(parse_tree: Any) -> str:
        text = original(parse_tree).replace(_QUOTE, "'")
        return text.replace(_LBRACE, "\\{").replace(_RBRACE, "\\}").replace(_BACKSLASH, "\\\\")

    return staticmethod(_text_of_str)


def before_state_machine_definition(call: Any) -> None:
    """CreateStateMachine / UpdateStateMachine: an integer ToleratedFailurePercentage (`50`, valid JSON for AWS's
    number) written as `50.0`, the only form moto's ASL grammar parses (the stored definition shows the `.0`); an
    escaped quote in an intrinsic function's string hidden from moto's lexer (_hide_escaped_quotes)."""
    doc = call.json()
    definition = doc.get("definition")
    if not isinstance(definition, str):
        return
    changed = definition
    if _PERCENTAGE.search(changed):
        changed = _PERCENTAGE.sub(r"\1\2.0", changed)
    if re.search(r"\\\\['nrt{}\\\\]", changed):
        try:
            changed = json.dumps(_hide_escaped_quotes(json.loads(changed)), ensure_ascii=False)
        except ValueError:
            pass
    if changed != definition:
        doc["definition"] = changed
        call.set_json(doc)


def _iso_start_time(original: Any) -> Any:
    """ExecutionWorker._get_evaluation_environment with `$$.Execution.StartTime` an ISO-8601 string, as AWS's
    context object has it (moto keeps a datetime, and an execution whose output holds it cannot be described)."""

    def _get_evaluation_environment(self: Any) -> Any:
        env = original(self)
        execution = env.states.context_object.context_object_data["Execution"]
        execution["StartTime"] = aws_json(execution["StartTime"])
        return env

    return _get_evaluation_environment


def _fractional_timestamps(original: Any) -> Any:
    """IsTimestamp.string_to_timestamp that also reads fractional seconds (`2013-08-23T01:02:15.422Z`, as SDK tasks
    hand timestamps on), dropping them as AWS's Timestamp* comparisons do (localstack/localstack#9813); moto reads
    `%Y-%m-%dT%H:%M:%SZ` only, and every comparison with such a timestamp is then false."""
    fraction = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z$")

    def string_to_timestamp(string: Any) -> Any:
        if isinstance(string, str) and (m := fraction.match(string)):
            string = m.group(1) + "Z"
        return original(string)

    return staticmethod(string_to_timestamp)


def _unescape_quote(original: Any) -> Any:
    """Preprocessor._replace_escaped_characters that also unescapes `\\'` (AWS: a quote in a string literal);
    `\\{`, `\\}` and `\\\\` stay escaped for States.Format (_format_escaped)."""

    def replace(match: Any) -> str:
        return "'" if match.group(1) == "'" else original(match)

    return staticmethod(replace)


def _format_escaped(self: Any, env: Any) -> None:
    """StringFormat._eval_body as AWS documents States.Format: `{}` takes the next argument; `\\{`, `\\}` and
    `\\\\` are literal characters."""
    self.argument_list.eval(env=env)
    args = env.stack.pop()
    template, values = args[0], list(map(self._to_str_repr, args[1:]))
    out, i, n = [], 0, 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template) and template[i + 1] in "{}\\'":
            out.append(template[i + 1])
            i += 2
        elif template.startswith("{}", i):
            if n >= len(values):
                raise ValueError(f"States.Format: more placeholders than arguments in '{template}'")
            out.append(values[n])
            n += 1
            i += 2
        else:
            out.append(c)
            i += 1
    env.stack.append("".join(out))


def _send_task_failure_with_cause(self: Any) -> Any:
    """StepFunctionResponse.send_task_failure that hands the `cause` on (moto's drops it; AWS fails the task, and an
    execution that does not catch it, with the error and the cause given)."""
    backend = self.stepfunction_backend
    token, error, cause = self._get_param("taskToken"), self._get_param("error"), self._get_param("cause")
    try:
        backend.send_task_failure(token, error=error, cause=cause)
    except TypeError:  # the non-executing backend takes no cause
        backend.send_task_failure(token, error=error)
    return importlib.import_module("moto.stepfunctions.responses").EmptyResult()


def _aws_string_matches(text: Any, pattern: Any) -> bool:
    """StringMatches as AWS documents it: `*` matches any run of characters, `\\*` a `*` and `\\\\` a `\\`; every
    other character (`?` and `[` too) only itself. moto uses fnmatch (`?` any character, `[...]` a class)."""
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), text, re.DOTALL) is not None


def install(port: int, verbose: bool = False) -> None:
    """Turn execution on and patch moto's engine (see the module docstring). Call once, before serving. Unless
    verbose, the engine does not log the failures of states (an execution's history has them), only its crashes."""
    global _port
    _port = port
    if not verbose:
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    apply_settings()
    for name in _CLIENT_USERS:
        module = importlib.import_module(f"{_ENGINE}.{name}")
        if hasattr(module, "boto_client_for"):
            module.boto_client_for = _client_for
    aws_sdk = importlib.import_module(f"{_ENGINE}.component.state.exec.state_task.service.state_task_service_aws_sdk")
    aws_sdk.StateTaskServiceAwsSdk._normalise_service_error_name = staticmethod(pascal_service_name)
    aws_sdk.StateTaskServiceAwsSdk._eval_service_task = _eval_service_task
    wait = importlib.import_module(f"{_ENGINE}.component.state.wait.wait_function.wait_function")
    wait.WaitFunction._wait_interval = _scaled_wait_interval
    retrier = importlib.import_module(f"{_ENGINE}.component.common.retry.retrier_decl")
    retrier.time = _ScaledTime()
    importlib.import_module("moto.stepfunctions.parser.models")  # imports the whole engine
    worker = importlib.import_module("moto.stepfunctions.parser.backend.execution_worker").ExecutionWorker
    worker._get_evaluation_environment = _iso_start_time(worker._get_evaluation_environment)
    json_path = importlib.import_module(f"{_ENGINE}.utils.json_path")
    definite = _definite_extract_json(json_path.extract_json)
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "extract_json", None) is \
                json_path.extract_json and module is not json_path:
            module.extract_json = definite
    json_path.extract_json = definite
    distributed = importlib.import_module(
        f"{_ENGINE}.component.state.exec.state_map.iteration.distributed_iteration_component")
    component = distributed.DistributedIterationComponent
    component._map_run = _map_run_with_threshold(component._map_run)
    state_map = importlib.import_module(f"{_ENGINE}.component.state.exec.state_map.state_map")
    state_map.StateMap.from_state_props = _declare_thresholds(state_map.StateMap.from_state_props)
    is_operator = importlib.import_module(
        f"{_ENGINE}.component.state.choice.comparison.operator.implementations.is_operator")
    is_operator.IsTimestamp.string_to_timestamp = _fractional_timestamps(is_operator.IsTimestamp.string_to_timestamp)
    preprocessor = importlib.import_module("moto.stepfunctions.parser.asl.parse.intrinsic.preprocessor").Preprocessor
    preprocessor._replace_escaped_characters = _unescape_quote(preprocessor._replace_escaped_characters)
    preprocessor._text_of_str = _text_with_quotes(preprocessor._text_of_str)
    string_format = importlib.import_module(f"{_ENGINE}.component.intrinsic.function.statesfunction.generic.string_format")
    string_format.StringFormat._eval_body = _format_escaped
    responses = importlib.import_module("moto.stepfunctions.responses")
    responses.StepFunctionResponse.send_task_failure = _send_task_failure_with_cause
    string_operators = importlib.import_module(
        f"{_ENGINE}.component.state.choice.comparison.operator.implementations.string_operators")
    string_operators.StringMatches._compare = staticmethod(_aws_string_matches)


def apply_settings() -> None:
    """moto reads its config on every Step Functions call: which backend (executing or not) serves it."""
    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = SETTINGS.execute


def control(method: str, body: Any) -> tuple[int, dict[str, Any]]:
    """GET / POST /_drflow/sfn (called holding STATE.lock)."""
    if method == "POST":
        if not isinstance(body, dict) or set(body) - {"execute", "time_scale"}:
            return 400, {"error": 'give any of "execute" (true/false) and "time_scale" (a number > 0)'}
        execute, scale = body.get("execute", SETTINGS.execute), body.get("time_scale", SETTINGS.time_scale)
        if not isinstance(execute, bool):
            return 400, {"error": "execute must be true or false"}
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1000:
            return 400, {"error": "time_scale must be a number above 0 (at most 1000)"}
        SETTINGS.execute, SETTINGS.time_scale = execute, float(scale)
        apply_settings()
    elif method != "GET":
        return 404, {"error": f"no control route {method} /_drflow/sfn"}
    return 200, {"execute": SETTINGS.execute, "time_scale": SETTINGS.time_scale}


def _running_executions() -> list[Any]:
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    found = []
    for account in list(stepfunctions_parser_backends.values()):
        for backend in list(account.values()):
            for machine in list(backend.state_machines):
                found += [e for e in list(machine.executions) if e.exec_status == ExecutionStatus.RUNNING]
    return found


def stop_executions(timeout: float = 10.0) -> int:
    """Before a reset: stop every running execution (as StopExecution does: ABORTED) and wait, without holding
    STATE.lock, until the engine's threads have ended, so that no execution of before the reset calls the emulator
    after it (a call in flight finishes first). Answers the number of threads still alive at the deadline."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    _STOPPING.set()
    try:
        with STATE.lock:
            now = datetime.datetime.now(tz=datetime.timezone.utc)
            for execution in _running_executions():
                execution.stop(stop_date=now, error=None, cause="drflow emulator reset")
        deadline = time.monotonic() + timeout
        for thread in list(TMP_THREADS):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        TMP_THREADS[:] = [t for t in TMP_THREADS if t.is_alive()]
        return len(TMP_THREADS)
    finally:
        _STOPPING.clear()


def reset() -> None:
    """After moto's reset (holding STATE.lock): the config again (moto's reset keeps it; be sure)."""
    apply_settings()
