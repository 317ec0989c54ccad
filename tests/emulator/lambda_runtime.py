"""One invocation of a Python Lambda function, in a process of its own (started by emu_lambda.py).

    python lambda_runtime.py REQUEST_ID FUNCTION_ARN DEADLINE_EPOCH_MS   (cwd: the unpacked code; env: the function's)

Reads the event (JSON) on stdin, imports `module.function` of `_HANDLER` from the working directory and calls it
with the event and a context object, as AWS's Python runtime does (aws-lambda-python-runtime-interface-client,
awslambdaric/bootstrap.py). Writes one JSON line on stdout: {"error": false, "payload": ANSWER_JSON_TEXT} or
{"error": true, "payload": {"errorMessage", "errorType", "requestId", "stackTrace"}}; what the function prints or
logs goes to stderr (its log), not to the answer. An exception that is not an `Exception` (SystemExit) ends the
process without an answer, as it ends Lambda's runtime.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class Fault(Exception):
    """An error of the runtime itself, named as AWS's runtime names it (Runtime.ImportModuleError, ...)."""

    def __init__(self, kind: str, message: str, trace: list[str] | None = None):
        super().__init__(message)
        self.kind, self.message, self.trace = kind, message, trace or []


class Context:
    """The handler's context argument (the attributes of awslambdaric's LambdaContext)."""

    def __init__(self, request_id: str, arn: str, deadline_ms: int):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def load(handler: str) -> Any:
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {e}")
    except SyntaxError as e:
        raise Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {e}",
                    [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}'])
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")


def error(message: str, kind: str, trace: list[str], request_id: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": kind, "requestId": request_id, "stackTrace": trace}


def main() -> None:
    request_id, arn, deadline_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    answer = os.fdopen(os.dup(1), "w")  # the answer's channel
    os.dup2(2, 1)  # print() and logging of the function go to the log (stderr), as on Lambda
    sys.path.insert(0, os.getcwd())
    event_text = sys.stdin.read()
    try:
        handler = load(os.environ.get("_HANDLER", ""))
        try:
            event = json.loads(event_text or "{}")
        except ValueError as e:
            raise Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}")
        try:
            result = handler(event, Context(request_id, arn, deadline_ms))
        except Exception as e:
            frames = traceback.extract_tb(e.__traceback__)[1:]  # from the function's own frames on
            out = error(str(e), type(e).__name__, traceback.format_list(frames), request_id)
            print(f"[ERROR] {type(e).__name__}: {e}", file=sys.stderr)
            answer.write(json.dumps({"error": True, "payload": out}) + "\n")
            return
        try:
            text = json.dumps(result)
        except (TypeError, ValueError) as e:
            raise Fault("Runtime.MarshalError", f"Unable to marshal response: {e}")
        answer.write(json.dumps({"error": False, "payload": text}) + "\n")
    except Fault as fault:
        # an init error (loading the handler) carries no request id, as AWS's runtime reports it
        rid = "" if fault.kind in ("Runtime.MalformedHandlerName", "Runtime.BuiltInModuleConflict",
                                   "Runtime.ImportModuleError", "Runtime.UserCodeSyntaxError",
                                   "Runtime.HandlerNotFound") else request_id
        print(f"[ERROR] {fault.kind}: {fault.message}", file=sys.stderr)
        answer.write(json.dumps({"error": True, "payload": error(fault.message, fault.kind, fault.trace, rid)}) + "\n")
    finally:
        answer.flush()


if __name__ == "__main__":
    main()
