"""Self-test checks of Lambda functions run by the emulator (emu_lambda.py, lambda_runtime.py) and of CloudFormation
state machines (emu_sfn_cfn.py). selftest.py runs them (checks(api), api = the selftest module)."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import zipfile
from typing import Any, Callable

PRIMARY, DR = "us-east-1", "us-west-2"
OTHER = "222222222222"  # the functions live in this account, to see their calls land there
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
os.environ["HOME_OF_SERVER"] = "the server's"  # inherited by the server started later: its functions must not see it

APP = '''
import os, sys, time
import boto3
from botocore.exceptions import ClientError


class ParameterNotFound(Exception):
    pass


def answer(event, context):
    print("log line from the function")
    sts = boto3.client("sts")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/lambda/written", Value=event["value"], Type="String", Overwrite=True)
    env = {k: os.environ.get(k) for k in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "COLOUR",
                                          "AWS_LAMBDA_FUNCTION_NAME", "HOME_OF_SERVER", "_HANDLER")}
    try:
        boto3.client("backup").list_backup_vaults()
        denied = None
    except ClientError as e:
        denied = e.response["Error"]["Code"]
    identity = sts.get_caller_identity()
    return {"event": event, "env": env, "arn": identity["Arn"], "account": identity["Account"], "denied": denied,
            "request_id": context.aws_request_id, "remaining": context.get_remaining_time_in_millis(),
            "function_arn": context.invoked_function_arn}


def fail(event, context):
    raise ParameterNotFound("Parameter /x not found.")


def slow(event, context):
    time.sleep(5)


def leave(event, context):
    sys.exit(3)


def unjsonable(event, context):
    return {1, 2}
'''


def zipped(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def checks(api: Any) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """The checks, in order, bound to the selftest module `api`."""

    def lam(region: str = DR, acct: str = OTHER) -> Any:
        return api.as_account("lambda", acct, region)

    def function(name: str, handler: str, role: str, timeout: int = 10, env: dict[str, str] | None = None,
                 acct: str = OTHER) -> str:
        return lam(acct=acct).create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler=handler, Timeout=timeout,
            Code={"ZipFile": zipped({"app.py": APP})},
            Environment={"Variables": env or {}})["FunctionArn"]

    def invoke(name: str, payload: Any = None, **extra: Any) -> tuple[dict[str, Any], Any]:
        out = lam().invoke(FunctionName=name, Payload=json.dumps(payload or {}), **extra)
        body = out["Payload"].read()
        return out, json.loads(body) if body else None

    def lambda_setup(ctx: dict[str, Any]) -> None:
        iam = api.as_account("iam", OTHER)
        ctx["fn_role"] = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
        # Step Functions executions call services as the default account (emu_sfn): their functions live there
        ctx["sfn_fn_role"] = api.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument=LAMBDA_TRUST)[
            "Role"]["Arn"]
        function("fail", "app.fail", ctx["sfn_fn_role"], acct=api.ACCOUNT)
        api.allow(OTHER, "fn", ["ssm:PutParameter"])
        ctx["untrusted_role"] = iam.create_role(RoleName="fn-untrusted", AssumeRolePolicyDocument=api.trust(
            api.allow_assume(OTHER)))["Role"]["Arn"]
        for name, handler, timeout in (("answer", "app.answer", 10), ("fail", "app.fail", 10),
                                       ("slow", "app.slow", 1), ("slow-30", "app.slow", 30),
                                       ("leave", "app.leave", 10),
                                       ("unjsonable", "app.unjsonable", 10), ("no-handler", "app.nothing", 10),
                                       ("no-module", "nothing.answer", 10)):
            function(name, handler, ctx["fn_role"], timeout, {"COLOUR": "blue"})

    def lambda_invoke_runs_the_handler(ctx: dict[str, Any]) -> None:
        api.control("DELETE", "/_drflow/calls")
        out, got = invoke("answer", {"value": "from the event"}, LogType="Tail")
        assert out["StatusCode"] == 200 and "FunctionError" not in out, out
        assert out["ExecutedVersion"] == "$LATEST", out
        assert got["event"] == {"value": "from the event"}, got
        # the function's environment: its variables, Lambda's, this emulator; nothing of the server's
        assert got["env"] == {"AWS_REGION": DR, "AWS_DEFAULT_REGION": DR, "AWS_ENDPOINT_URL": api.URL,
                              "COLOUR": "blue", "AWS_LAMBDA_FUNCTION_NAME": "answer", "HOME_OF_SERVER": None,
                              "_HANDLER": "app.answer"}, got["env"]
        # the credentials: a session of the function's role, in the role's account, held to its policies
        assert got["arn"] == f"arn:aws:sts::{OTHER}:assumed-role/fn/answer", got["arn"]
        assert got["account"] == OTHER, got
        assert got["denied"] == "AccessDeniedException", got  # backup:ListBackupVaults is not in the role's policy
        assert 0 < got["remaining"] <= 10_000 and got["function_arn"].endswith(":function:answer"), got
        assert got["request_id"] == out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"], (got, out)
        assert "log line from the function" in base64.b64decode(out["LogResult"]).decode(), out["LogResult"]
        written = api.as_account("ssm", OTHER, DR).get_parameter(Name="/lambda/written")["Parameter"]["Value"]
        assert written == "from the event", written
        e = api.error_of(lambda: api.client("ssm", DR).get_parameter(Name="/lambda/written"))
        assert api.code(e) == "ParameterNotFound", "the function's write landed in the default account"
        calls = api.control("GET", "/_drflow/calls")
        invoke_call = next(c for c in calls if c["operation"] == "Invoke")
        assert invoke_call["request"]["FunctionName"] == "answer", invoke_call
        assert invoke_call["request"]["Payload"] == {"value": "from the event"}, invoke_call
        assert invoke_call["request"]["LogType"] == "Tail" and invoke_call["account"] == OTHER, invoke_call
        put = next(c for c in calls if c["operation"] == "PutParameter")
        assert (put["account"], put["region"], put["status"]) == (OTHER, DR, 200), put
        denied = next(c for c in calls if c["operation"] == "ListBackupVaults")
        assert denied["status"] == 403, denied
        events = api.as_account("logs", OTHER, DR).filter_log_events(logGroupName="/aws/lambda/answer")["events"]
        assert any("log line from the function" in e["message"] for e in events), events

    def lambda_errors_as_lambda_answers_them(ctx: dict[str, Any]) -> None:
        out, got = invoke("fail")
        assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled", out
        assert got["errorType"] == "ParameterNotFound" and got["errorMessage"] == "Parameter /x not found.", got
        assert got["stackTrace"] and "app.py" in got["stackTrace"][0] and "in fail" in got["stackTrace"][0], got
        calls = api.control("GET", "/_drflow/calls?operation=Invoke")
        assert calls[-1]["function_error"] == "Unhandled" and calls[-1]["status"] == 200, calls[-1]
        started = time.monotonic()
        out, got = invoke("slow")
        assert time.monotonic() - started < 4, "the function was not stopped at its timeout"
        assert out["FunctionError"] == "Unhandled" and got["errorType"] == "Sandbox.Timedout", got
        assert got["errorMessage"].endswith("Error: Task timed out after 1.00 seconds"), got
        out, got = invoke("leave")
        assert got["errorType"] == "Runtime.ExitError" and got["errorMessage"].endswith(
            "Runtime exited with error: exit status 3"), got
        out, got = invoke("unjsonable")
        assert got["errorType"] == "Runtime.MarshalError", got
        out, got = invoke("no-handler")
        assert (got["errorType"], got["errorMessage"]) == (
            "Runtime.HandlerNotFound", "Handler 'nothing' missing on module 'app'"), got
        out, got = invoke("no-module")
        assert got["errorType"] == "Runtime.ImportModuleError" and got["errorMessage"].startswith(
            "Unable to import module 'nothing': "), got
        out = lam().invoke(FunctionName="answer", InvocationType="DryRun")
        assert out["StatusCode"] == 204, out
        e = api.error_of(lambda: lam().invoke(FunctionName="answer", Payload=b"{not json"))
        assert api.code(e) == "InvalidRequestContentException", e.response
        e = api.error_of(lambda: lam().invoke(FunctionName="missing", Payload=b"{}"))
        assert api.code(e) == "ResourceNotFoundException", e.response
        function("untrusted", "app.answer", ctx["untrusted_role"])
        e = api.error_of(lambda: lam().invoke(FunctionName="untrusted", Payload=b"{}"))
        assert api.scm(e) == (400, "InvalidParameterValueException",
                              "The role defined for the function cannot be assumed by Lambda."), api.scm(e)

    def lambda_errors_reach_step_functions_by_error_type(ctx: dict[str, Any]) -> None:
        sfn = api.client("stepfunctions", DR)
        arn = lam(acct=api.ACCOUNT).get_function(FunctionName="fail")["Configuration"]["FunctionArn"]
        task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": arn}}
        definitions = {
            "caught": {"StartAt": "Call", "States": {
                "Call": {**task, "Catch": [{"ErrorEquals": ["ParameterNotFound"], "Next": "Missing"}], "End": True},
                "Missing": {"Type": "Pass", "End": True}}},
            "uncaught": {"StartAt": "Call", "States": {"Call": {**task, "End": True}}}}
        outcome = {}
        for name, definition in definitions.items():
            machine = sfn.create_state_machine(name=f"lambda-{name}", definition=json.dumps(definition),
                                               roleArn=f"arn:aws:iam::{api.ACCOUNT}:role/sfn")["stateMachineArn"]
            execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
            for _ in range(300):
                done = sfn.describe_execution(executionArn=execution)
                if done["status"] != "RUNNING":
                    break
                time.sleep(0.05)
            outcome[name] = (done["status"], done.get("error"))
            if name == "uncaught":
                assert json.loads(done["cause"])["errorType"] == "ParameterNotFound", done["cause"]
        assert outcome == {"caught": ("SUCCEEDED", None), "uncaught": ("FAILED", "ParameterNotFound")}, outcome

    def cloudformation_state_machine_with_substitutions(ctx: dict[str, Any]) -> None:
        template = {"Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "python3.12", "Handler": "index.handler", "Role": ctx["sfn_fn_role"],
                "Code": {"ZipFile": "def handler(event, context):\n    return {'got': event}\n"}}},
            "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
                "StateMachineName": "from-a-stack", "RoleArn": f"arn:aws:iam::{api.ACCOUNT}:role/sfn",
                "StateMachineType": "STANDARD",
                "LoggingConfiguration": {"Level": "ERROR", "IncludeExecutionData": False},
                "DefinitionString": json.dumps({"StartAt": "Call", "States": {"Call": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload",
                    "Parameters": {"FunctionName": "${Function}", "Payload": {"colour": "${Colour}",
                                                                                "kept": "${NotAKey}"}},
                    "End": True}}}),
                "DefinitionSubstitutions": {"Function": {"Fn::GetAtt": ["Fn", "Arn"]}, "Colour": "green"}}}},
            "Outputs": {"Arn": {"Value": {"Ref": "Machine"}}}}
        cfn = api.client("cloudformation", DR)
        cfn.create_stack(StackName="machine", TemplateBody=json.dumps(template))
        stack = cfn.describe_stacks(StackName="machine")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack
        machine = stack["Outputs"][0]["OutputValue"]
        sfn = api.client("stepfunctions", DR)
        described = sfn.describe_state_machine(stateMachineArn=machine)
        assert described["loggingConfiguration"] == {"level": "ERROR", "includeExecutionData": False}, described
        assert described["type"] == "STANDARD", described
        definition = json.loads(described["definition"])
        params = definition["States"]["Call"]["Parameters"]
        assert params["FunctionName"].startswith(f"arn:aws:lambda:{DR}:{api.ACCOUNT}:function:"), params
        assert params["Payload"] == {"colour": "green", "kept": "${NotAKey}"}, params
        execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        for _ in range(300):
            done = sfn.describe_execution(executionArn=execution)
            if done["status"] != "RUNNING":
                break
            time.sleep(0.05)
        assert done["status"] == "SUCCEEDED", done
        assert json.loads(done["output"]) == {"got": {"colour": "green", "kept": "${NotAKey}"}}, done["output"]
        cfn.delete_stack(StackName="machine")
        assert machine not in [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]

    def reset_stops_running_functions(ctx: dict[str, Any]) -> None:
        """A reset kills a function still running (its Invoke answers Runtime.ExitError) and functions run again
        after it. Last: the reset forgets everything above."""
        got: dict[str, Any] = {}
        caller = threading.Thread(target=lambda: got.update(zip(("out", "payload"), invoke("slow-30"))))
        started = time.monotonic()
        caller.start()
        time.sleep(1.0)
        api.control("POST", "/_drflow/reset")
        caller.join(10)
        assert time.monotonic() - started < 4, "the reset waited for the function"
        assert got["out"]["FunctionError"] == "Unhandled" and got["payload"]["errorType"] == "Runtime.ExitError", got
        iam = api.client("iam")
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=LAMBDA_TRUST)
        api.client("lambda", DR).create_function(
            FunctionName="after", Runtime="python3.12", Role=role["Role"]["Arn"], Handler="index.handler",
            Code={"ZipFile": zipped({"index.py": "def handler(event, context):\n    return 'again'\n"})})
        out = api.client("lambda", DR).invoke(FunctionName="after", Payload=b"{}")
        assert "FunctionError" not in out and json.loads(out["Payload"].read()) == "again", out

    return [(f.__name__, f) for f in (
        lambda_setup, lambda_invoke_runs_the_handler, lambda_errors_as_lambda_answers_them,
        lambda_errors_reach_step_functions_by_error_type, cloudformation_state_machine_with_substitutions,
        reset_stops_running_functions)]
