"""AWS Lambda Invoke without Docker: a Python function runs in a process of the emulator's own Python.

moto runs Lambda functions only in Docker containers (moto/awslambda/models.py LambdaFunction._invoke_lambda). Here
`Invoke` (RequestResponse) of a function whose runtime is `python3.x` and whose code is a zip (CloudFormation's
`ZipFile`, which moto zips as index.py, or a zip given to CreateFunction / from S3) unpacks the zip into a temporary
folder and runs `lambda_runtime.py` there, with this venv's Python (so the function has boto3, as Lambda's Python
runtimes do, and cannot corrupt the server): the event on stdin, the answer on stdout, the function's log on stderr.
Its environment holds nothing of the server's: the function's `Environment` variables, then Lambda's own
(AWS_REGION / AWS_DEFAULT_REGION = the function's region, AWS_LAMBDA_FUNCTION_NAME, ..., _HANDLER,
LAMBDA_TASK_ROOT), AWS_ENDPOINT_URL = this emulator, and the credentials of a session of the function's execution
role (moto's AssumeRole, session name = the function's name, as Lambda names it), so the function's calls act as
the role's account and are held to the role's identity policies (emu_iam). A role that is missing or does not
trust `lambda.amazonaws.com` → 400 InvalidParameterValueException "The role defined for the function cannot be
assumed by Lambda." (CreateFunction's message on AWS; the emulator checks at Invoke).

Answers as Lambda does: 200 with the handler's return value as JSON, `X-Amz-Executed-Version: $LATEST`; an
exception → 200, `X-Amz-Function-Error: Unhandled`, payload {"errorMessage", "errorType" (the exception's class
name), "requestId", "stackTrace"}; a runtime error (Runtime.ImportModuleError, Runtime.HandlerNotFound,
Runtime.MarshalError, ...) the same way with that errorType; the function's Timeout passed → the process is killed,
{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: ID Error: Task timed out after N.00 seconds"}; a
process that ends without an answer (sys.exit) → Runtime.ExitError. `LogType: Tail` → `X-Amz-Log-Result` (the log's
last 4 KB, base64). The log also lands in CloudWatch Logs (/aws/lambda/NAME, moto's). A payload that is not JSON →
400 InvalidRequestContentException. `InvocationType: DryRun` → 204, nothing run; `Event` → EmulatorNotImplemented.

The run happens outside STATE.lock (the function calls this server): before_invoke (under the lock) prepares it
and leaves `call.job`; server.py runs the job once the lock is released. A reset kills the running functions first
(stop_functions).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from typing import Any, Callable

from moto.awslambda.models import lambda_backends
from moto.sts.models import sts_backends

import emu_accounts
from emu_common import ApiError, Reply

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(HERE, "lambda_runtime.py")
LOG_TAIL = 4096  # bytes of the log that LogType Tail answers
_port = 0
_running: set[subprocess.Popen[bytes]] = set()  # the functions' processes now running (a reset kills them)
_running_lock = threading.Lock()
_stopping = threading.Event()  # set during a reset: no function starts


def install(port: int) -> None:
    global _port
    _port = port


def _trusts_lambda(role: Any) -> bool:
    """The role's trust policy lets the Lambda service assume it (an Allow for sts:AssumeRole to Service
    lambda.amazonaws.com; no matching Deny)."""
    doc = emu_accounts.parse_policy(role.assume_role_policy_document)
    allowed = False
    statements = doc.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict):
            continue
        principal = statement.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if "lambda.amazonaws.com" not in services or not any(str(a).lower() in ("sts:assumerole", "sts:*", "*")
                                                             for a in actions):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _header(call: Any, name: str) -> str | None:
    return call.environ.get("HTTP_" + name.upper().replace("-", "_"))


def before_invoke(call: Any) -> None:
    """Invoke (under STATE.lock): find the function, check what AWS checks, assume its role; leave the run as
    `call.job` (a callable answering the Reply) for server.py to run outside the lock."""
    backend = lambda_backends[call.account][call.region]
    qualifier = dict(call.query()).get("Qualifier")
    fn = backend.get_function(call.path_params.get("FunctionName", ""), qualifier)  # moto's 404 when missing
    kind = _header(call, "X-Amz-Invocation-Type") or "RequestResponse"
    if kind == "DryRun":
        call.reply = Reply(204, b"", {"x-amzn-RequestId": str(uuid.uuid4())})
        return
    if kind != "RequestResponse":
        raise NotImplementedError(f"InvocationType {kind} (only RequestResponse and DryRun run here)")
    if not str(fn.run_time or "").startswith("python3") or fn.package_type != "Zip" or not fn.code_bytes:
        raise NotImplementedError(f"runtime {fn.run_time} / package type {fn.package_type}: only Python functions "
                                  "with a zip run here")
    try:
        json.loads(call.body or b"{}")
    except ValueError as e:
        raise ApiError("InvalidRequestContentException", f"Could not parse request body into json: {e}")
    role = emu_accounts.find_role(fn.role)
    if role is None or not _trusts_lambda(role):
        raise ApiError("InvalidParameterValueException", "The role defined for the function cannot be assumed by "
                                                         "Lambda.")
    session = sts_backends[role.account_id]["aws"].assume_role(
        region_name=fn.region, role_session_name=fn.function_name, role_arn=role.arn, policy=None,
        duration=3600, external_id=None)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC"}
    env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    request_id = str(uuid.uuid4())
    env.update({
        "AWS_REGION": fn.region, "AWS_DEFAULT_REGION": fn.region,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_port}",
        "AWS_ACCESS_KEY_ID": session.access_key_id, "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size), "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + request_id.replace("-", ""),
        "_HANDLER": str(fn.handler or ""),
        # nothing of the host's AWS set-up reaches the function
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
    })
    call.reply = Reply(200, b"")  # replaced by the job's answer
    call.job = _job(fn, call.body or b"{}", env, request_id, int(fn.timeout or 3),
                    (_header(call, "X-Amz-Log-Type") or "None") == "Tail")


def _exit_error(request_id: str, status: str) -> dict[str, Any]:
    return {"errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {status}"}


def _execute(root: str, event: bytes, env: dict[str, str], request_id: str, arn: str,
             timeout: int) -> tuple[dict[str, Any], str]:
    """Run the function's process in `root`: ({"error": bool, "payload": ...}, its log)."""
    if _stopping.is_set():  # a reset is under way
        return {"error": True, "payload": _exit_error(request_id, "signal: killed")}, ""
    deadline_ms = int((time.time() + timeout) * 1000)
    process = subprocess.Popen([sys.executable, RUNTIME, request_id, arn, str(deadline_ms)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root, env=env)
    with _running_lock:
        _running.add(process)
    try:
        out, err = process.communicate(event, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        log = process.communicate()[1].decode(errors="replace")
        return {"error": True, "payload": {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"}}, log
    finally:
        with _running_lock:
            _running.discard(process)
    lines = out.decode(errors="replace").strip().splitlines()
    if lines:
        return json.loads(lines[-1]), err.decode(errors="replace")
    code = process.returncode
    status = f"exit status {code}" if code >= 0 else f"signal: {-code}"
    return {"error": True, "payload": _exit_error(request_id, status)}, err.decode(errors="replace")


def _job(fn: Any, event: bytes, env: dict[str, str], request_id: str, timeout: int, tail: bool) -> Callable[[], Reply]:
    code, arn = fn.code_bytes, fn.function_arn

    def run() -> Reply:
        with tempfile.TemporaryDirectory(prefix="drflow-lambda-") as root:
            with zipfile.ZipFile(io.BytesIO(code)) as z:
                z.extractall(root)
            env["LAMBDA_TASK_ROOT"] = env["HOME"] = root
            answer, log = _execute(root, event, env, request_id, arn, timeout)
        body = json.dumps(answer["payload"]) if answer["error"] else answer["payload"]
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST",
                   "x-amzn-RequestId": request_id}
        if answer["error"]:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if tail:
            headers["X-Amz-Log-Result"] = base64.b64encode(log.encode()[-LOG_TAIL:]).decode()
        _save_log(fn, log)
        return Reply(200, body, headers)

    return run


def stop_functions() -> int:
    """Before a reset: kill the functions' processes still running (their Invoke answers Runtime.ExitError) and
    start none until reset(), so that none calls the emulator after it. Answers how many were killed."""
    _stopping.set()
    with _running_lock:
        running = list(_running)
    for process in running:
        process.kill()
    return len(running)


def reset() -> None:
    """After moto's reset: functions run again."""
    _stopping.clear()


def _save_log(fn: Any, log: str) -> None:
    """The invocation's log in moto's CloudWatch Logs (/aws/lambda/NAME), as Lambda writes it."""
    from emu_common import STATE

    with STATE.lock:
        try:
            fn.logs_backend.ensure_log_group(fn.logs_group_name)
            fn.save_logs(log or "\n")
        except Exception:  # the function or its account was reset meanwhile: no log
            pass
