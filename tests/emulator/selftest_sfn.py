"""Self-test checks of Step Functions executions on the emulator (emu_sfn.py) and of the export's cross-region call
function (src/export/cross_region.py). selftest.py runs them (checks(api), api = the selftest module: its
client(), control(), URL)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
CROSS_REGION = os.path.join(HERE, "..", "..", "src", "export", "cross_region.py")
PRIMARY, DR = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/drflow-sfn"
SDK = "arn:aws:states:::aws-sdk:"
FAST = 0.01  # time_scale of these checks: a Wait of 2 s takes 20 ms


def task(action: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": SDK + action, "Parameters": parameters, **fields}


# The drflow pipeline in one region, hand-written: Backup job (token from the execution name), a Choice/Wait loop on
# DescribeBackupJob (throttling retried), the AMI's state, the copy job to the DR vault (started in this region), the
# SSM parameter written and read back.
PIPELINE = {
    "Comment": "drflow pipeline, one region",
    "StartAt": "StartBackup",
    "States": {
        "StartBackup": task("backup:startBackupJob", {
            "BackupVaultName.$": "$.vault", "ResourceArn.$": "$.instance_arn", "IamRoleArn.$": "$.role",
            "IdempotencyToken.$": "$$.Execution.Name"},
            ResultSelector={"JobId.$": "$.BackupJobId"}, ResultPath="$.backup", Next="DescribeJob",
            Retry=[{"ErrorEquals": ["Backup.BackupException"], "IntervalSeconds": 1, "MaxAttempts": 3,
                    "BackoffRate": 2.0}]),
        "DescribeJob": task("backup:describeBackupJob", {"BackupJobId.$": "$.backup.JobId"},
                            ResultPath="$.job", Next="JobDone",
                            Retry=[{"ErrorEquals": ["Backup.BackupException"], "IntervalSeconds": 2,
                                    "MaxAttempts": 3, "BackoffRate": 2.0, "MaxDelaySeconds": 10,
                                    "JitterStrategy": "FULL"}]),
        "JobDone": {"Type": "Choice", "Choices": [
            {"Variable": "$.job.State", "StringEquals": "COMPLETED", "Next": "ImageId"},
            {"Or": [{"Variable": "$.job.State", "StringEquals": s} for s in ("FAILED", "ABORTED", "EXPIRED")],
             "Next": "JobFailed"}], "Default": "WaitJob"},
        "WaitJob": {"Type": "Wait", "Seconds": 2, "Next": "DescribeJob"},
        "JobFailed": {"Type": "Fail", "Error": "BackupJobFailed", "CausePath": "$.job.StatusMessage"},
        "ImageId": {"Type": "Pass", "Parameters": {
            "ImageId.$": "States.ArrayGetItem(States.StringSplit($.job.RecoveryPointArn, '/'), 1)"},
            "ResultPath": "$.ami", "Next": "DescribeImage"},
        "DescribeImage": task("ec2:describeImages", {"ImageIds.$": "States.Array($.ami.ImageId)"},
                              ResultSelector={"State.$": "$.Images[0].State"}, ResultPath="$.image",
                              Next="ImageAvailable"),
        "ImageAvailable": {"Type": "Choice", "Choices": [
            {"Variable": "$.image.State", "StringEquals": "available", "Next": "StartCopy"}],
            "Default": "WaitImage"},
        "WaitImage": {"Type": "Wait", "Seconds": 1, "Next": "DescribeImage"},
        "StartCopy": task("backup:startCopyJob", {
            "RecoveryPointArn.$": "$.job.RecoveryPointArn", "SourceBackupVaultName.$": "$.vault",
            "DestinationBackupVaultArn.$": "$.dr_vault_arn", "IamRoleArn.$": "$.role",
            "IdempotencyToken.$": "States.Format('{}-copy', $$.Execution.Name)"},
            ResultSelector={"JobId.$": "$.CopyJobId"}, ResultPath="$.copy", Next="DescribeCopy"),
        # the whole job: DestinationRecoveryPointArn is not there before RUNNING (a ResultSelector path that is
        # missing fails the state with States.Runtime, on AWS too)
        "DescribeCopy": task("backup:describeCopyJob", {"CopyJobId.$": "$.copy.JobId"},
                             ResultSelector={"Job.$": "$.CopyJob"}, ResultPath="$.copyjob", Next="CopyDone"),
        "CopyDone": {"Type": "Choice", "Choices": [
            {"Variable": "$.copyjob.Job.State", "StringEquals": "COMPLETED", "Next": "PutParameter"},
            {"Variable": "$.copyjob.Job.State", "StringEquals": "FAILED", "Next": "CopyFailed"}],
            "Default": "WaitCopy"},
        "WaitCopy": {"Type": "Wait", "Seconds": 2, "Next": "DescribeCopy"},
        "CopyFailed": {"Type": "Fail", "Error": "CopyJobFailed", "CausePath": "$.copyjob.Job.StatusMessage"},
        "PutParameter": task("ssm:putParameter", {
            "Name.$": "$.parameter", "Value.$": "$.ami.ImageId", "Type": "String", "DataType": "aws:ec2:image",
            "Overwrite": True}, ResultPath="$.put", Next="ReadBack"),
        "ReadBack": task("ssm:getParameter", {"Name.$": "$.parameter"},
                         ResultSelector={"Value.$": "$.Parameter.Value", "Version.$": "$.Parameter.Version",
                                         "LastModified.$": "$.Parameter.LastModifiedDate"},
                         ResultPath="$.readback", Next="Verify"),
        "Verify": {"Type": "Choice", "Choices": [
            {"Variable": "$.readback.Value", "StringEqualsPath": "$.ami.ImageId", "Next": "Published"}],
            "Default": "ReadBackMismatch"},
        "ReadBackMismatch": {"Type": "Fail", "Error": "ReadBackMismatch", "Cause": "the parameter holds another AMI"},
        "Published": {"Type": "Succeed"},
    },
}


def checks(api: Any) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """The checks, in order, bound to the selftest module `api`."""

    def sfn(region: str = PRIMARY) -> Any:
        return api.client("stepfunctions", region)

    created: dict[str, dict[str, Any]] = {}  # every definition, linted at the end

    def create(name: str, definition: dict[str, Any], region: str = PRIMARY) -> str:
        created[name] = definition
        return sfn(region).create_state_machine(name=name, definition=json.dumps(definition),
                                                roleArn=ROLE)["stateMachineArn"]

    def execute(machine: str, name: str, payload: Any = None, timeout: float = 30) -> dict[str, Any]:
        """Start an execution and wait for its end; its description plus `elapsed` (s) and `history`."""
        region = machine.split(":")[3]
        started = time.monotonic()
        arn = sfn(region).start_execution(stateMachineArn=machine, name=name,
                                          input=json.dumps(payload or {}))["executionArn"]
        while True:
            done = sfn(region).describe_execution(executionArn=arn)
            if done["status"] != "RUNNING":
                break
            assert time.monotonic() - started < timeout, f"{name} still running after {timeout}s"
            time.sleep(0.02)
        done["elapsed"] = time.monotonic() - started
        done["history"] = sfn(region).get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return done

    def failed_tasks(history: list[dict[str, Any]]) -> list[str]:
        return [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]

    def calls(operation: str) -> list[dict[str, Any]]:
        return api.control("GET", f"/_drflow/calls?operation={operation}")

    def sfn_settings(ctx: dict[str, Any]) -> None:
        assert api.control("GET", "/_drflow/sfn") == {"execute": True, "time_scale": 1.0}
        assert api.control("POST", "/_drflow/sfn", {"time_scale": FAST}) == {"execute": True, "time_scale": FAST}
        for bad in ({"time_scale": 0}, {"time_scale": "1"}, {"execute": 1}, {"speed": 2}):
            try:
                api.control("POST", "/_drflow/sfn", bad)
                raise AssertionError(f"accepted {bad}")
            except api.urllib.error.HTTPError as e:
                assert e.code == 400, (bad, e.code)

    def sfn_pipeline_one_region(ctx: dict[str, Any]) -> None:
        ec2, backup = api.client("ec2"), api.client("backup")
        base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        backup.create_backup_vault(BackupVaultName="drflow-sfn")
        dr_vault = api.client("backup", DR).create_backup_vault(BackupVaultName="drflow-sfn-dr")["BackupVaultArn"]
        api.control("DELETE", "/_drflow/calls")
        api.control("POST", "/_drflow/faults", {"service": "backup", "operation": "DescribeBackupJob", "nth": 2,
                                                "code": "ThrottlingException", "message": "Rate exceeded",
                                                "count": 2})
        machine = create("drflow-pipeline", PIPELINE)
        parameter = f"/drflow/{instance}/ami"
        run = execute(machine, "run-0001", {
            "vault": "drflow-sfn", "instance_arn": f"arn:aws:ec2:{PRIMARY}:{ACCOUNT}:instance/{instance}",
            "role": ROLE, "parameter": parameter, "dr_vault_arn": dr_vault})
        api.control("DELETE", "/_drflow/faults")
        assert run["status"] == "SUCCEEDED", (run["status"], run.get("error"), run.get("cause"))
        out = json.loads(run["output"])
        ami = out["ami"]["ImageId"]
        assert ami.startswith("ami-") and out["image"] == {"State": "available"}, out
        assert api.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"] == ami
        assert out["readback"]["Value"] == ami and out["readback"]["Version"] == 1, out["readback"]
        assert out["readback"]["LastModified"].endswith("Z"), out["readback"]  # ISO-8601, as AWS hands it on
        starts = calls("StartBackupJob")
        assert len(starts) == 1 and starts[0]["request"]["IdempotencyToken"] == "run-0001", starts
        assert starts[0]["region"] == PRIMARY
        jobs = backup.list_backup_jobs(ByBackupVaultName="drflow-sfn")["BackupJobs"]
        assert [j["BackupJobId"] for j in jobs] == [out["backup"]["JobId"]], jobs
        copies = calls("StartCopyJob")
        assert len(copies) == 1 and copies[0]["request"]["IdempotencyToken"] == "run-0001-copy", copies
        dr_ami = out["copyjob"]["Job"]["DestinationRecoveryPointArn"].rsplit("/", 1)[1]
        assert api.image_state(DR, dr_ami) == "available" and dr_ami != ami, dr_ami
        describes = [c["status"] for c in calls("DescribeBackupJob")]
        assert describes[:3] == [200, 400, 400] and describes[-1] == 200, describes  # throttled twice, retried
        assert failed_tasks(run["history"]) == ["Backup.BackupException"] * 2, failed_tasks(run["history"])
        assert run["elapsed"] < 5, run["elapsed"]
        print(f"     pipeline execution: {run['elapsed']:.2f}s, {len(run['history'])} events, "
              f"{len(describes)} DescribeBackupJob calls")
        # the same execution name again, the execution closed: ExecutionAlreadyExists (AWS: StartExecution is
        # idempotent only while the execution with that name and input runs), no second backup
        e = api.error_of(lambda: sfn().start_execution(stateMachineArn=machine, name="run-0001", input=run["input"]))
        assert api.code(e) == "ExecutionAlreadyExists" and len(calls("StartBackupJob")) == 1, api.code(e)

    def sfn_map_over_three_items(ctx: dict[str, Any]) -> None:
        body = {"StartAt": "Put", "States": {
            "Put": task("ssm:putParameter", {"Name.$": "$.name", "Value.$": "$.value", "Type": "String",
                                             "Overwrite": True}, ResultPath=None, Next="Get"),
            "Get": task("ssm:getParameter", {"Name.$": "$.name"},
                        ResultSelector={"Name.$": "$.Parameter.Name", "Value.$": "$.Parameter.Value"}, End=True)}}
        machine = create("drflow-fleet", {"StartAt": "Fleet", "States": {"Fleet": {
            "Type": "Map", "ItemsPath": "$.instances", "MaxConcurrency": 2,
            "ItemSelector": {"name.$": "States.Format('/drflow/{}/ami', $$.Map.Item.Value)",
                             "value.$": "States.Format('ami-{}', $$.Map.Item.Index)"},
            "ItemProcessor": body, "ResultPath": "$.published", "End": True}}})
        run = execute(machine, "fleet-1", {"instances": ["i-a", "i-b", "i-c"]})
        assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
        assert json.loads(run["output"])["published"] == [
            {"Name": f"/drflow/{i}/ami", "Value": f"ami-{n}"} for n, i in enumerate(["i-a", "i-b", "i-c"])]
        expected = [f"/drflow/{i}/ami" for i in ("i-a", "i-b", "i-c")]
        written = sorted(c["request"]["Name"] for c in calls("PutParameter") if c["request"]["Name"] in expected)
        assert written == expected, written  # once each

        # Distributed mode: AWS's failure threshold (moto alone never fails a Map Run); integer percentages (statelint
        # wants an integer, moto alone parses only a float)
        def tolerating(tolerance: dict[str, Any]) -> dict[str, Any]:
            return {"StartAt": "Fleet", "States": {"Fleet": {
                "Type": "Map", "ItemsPath": "$.names", **tolerance, "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Get",
                    "States": {"Get": task("ssm:getParameter", {"Name.$": "$"},
                                           ResultSelector={"Value.$": "$.Parameter.Value"}, End=True)}},
                "End": True}}}
        names = {"names": ["/drflow/i-a/ami", "/drflow/missing", "/drflow/i-c/ami"]}
        for n, (tolerance, status) in enumerate([({"ToleratedFailurePercentage": 50}, "SUCCEEDED"),
                                                 ({"ToleratedFailureCount": 1}, "SUCCEEDED"),
                                                 ({"ToleratedFailurePercentage": 20}, "FAILED"),
                                                 ({}, "FAILED")]):
            run = execute(create(f"drflow-tolerance-{n}", tolerating(tolerance)), f"tolerance-{n}", names)
            assert run["status"] == status, (tolerance, run["status"], run.get("error"))
            if status == "FAILED":
                assert run["error"] == "States.ExceedToleratedFailureThreshold", run.get("error")

    def sfn_parallel_and_intrinsics(ctx: dict[str, Any]) -> None:
        machine = create("drflow-parallel", {"StartAt": "Both", "States": {"Both": {
            "Type": "Parallel", "ResultPath": "$.regions", "End": True, "Branches": [
                {"StartAt": "Name", "States": {"Name": {"Type": "Pass", "End": True, "Parameters": {
                    "name.$": "States.Format('/drflow/{}/ami', $.instance)",
                    "hash.$": "States.Hash($.instance, 'SHA-256')", "next.$": "States.MathAdd($.attempt, 1)",
                    "merged.$": "States.JsonMerge($.a, $.b, false)", "uuid.$": "States.UUID()"}}}},
                {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 2, "Next": "Done"},
                                               "Done": {"Type": "Pass", "Result": "waited", "End": True}}}]}}})
        run = execute(machine, "parallel-1", {"instance": "i-a", "attempt": 1, "a": {"x": 1}, "b": {"y": 2}})
        assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
        first, second = json.loads(run["output"])["regions"]
        assert second == "waited" and first["name"] == "/drflow/i-a/ami" and first["next"] == 2, first
        assert first["hash"] == hashlib.sha256(b"i-a").hexdigest(), first["hash"]
        assert first["merged"] == {"x": 1, "y": 2} and len(first["uuid"]) == 36, first

    def sfn_escapes_and_callbacks(ctx: dict[str, Any]) -> None:
        # an intrinsic's escapes as AWS reads them (LocalStack's engine, which moto's is, reads `\\n` as a line
        # break too): a quote, a line break, braces and a backslash in a States.Format template. Not linted:
        # asl-validator refuses `\\n` and escaped braces in a state's own Parameters (it does not look into nested
        # objects, where drflow export writes a step's inputs).
        machine = sfn().create_state_machine(name="drflow-escapes", roleArn=ROLE, definition=json.dumps(
            {"StartAt": "Text", "States": {"Text": {"Type": "Pass", "End": True, "Parameters": {
                "text.$": "States.Format('it\\'s {}\\nnext', $.n)"}}}}))["stateMachineArn"]
        run = execute(machine, "escapes-1", {"n": 1})
        assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
        assert json.loads(run["output"])["text"] == "it's 1\nnext", run["output"]
        braces = sfn().create_state_machine(name="drflow-braces", roleArn=ROLE, definition=json.dumps(
            {"StartAt": "Text", "States": {"Text": {"Type": "Pass", "End": True, "Parameters": {
                "text.$": "States.Format('\\{\"a\":{}\\} \\\\', $.n)"}}}}))["stateMachineArn"]
        run = execute(braces, "braces-1", {"n": 1})
        assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
        assert json.loads(run["output"])["text"] == '{"a":1} \\', run["output"]
        # a callback task (SNS publish .waitForTaskToken): the token in the message, the task ended by
        # SendTaskSuccess (its output the task's) or SendTaskFailure (its error and cause the execution's)
        sns, sqs = api.client("sns"), api.client("sqs")
        topic = sns.create_topic(Name="drflow-callbacks")["TopicArn"]
        queue = sqs.create_queue(QueueName="drflow-callbacks")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        machine = create("drflow-callback", {"StartAt": "Ask", "States": {"Ask": {
            "Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken", "TimeoutSeconds": 60,
            "Parameters": {"TopicArn": topic, "Message": {"token.$": "$$.Task.Token"}}, "End": True}}})

        def answered(name: str, answer: Callable[[str], None]) -> dict[str, Any]:
            arn = sfn().start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
            for _ in range(250):
                got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
                if got:
                    break
                time.sleep(0.02)
            assert got, f"{name}: no message"
            answer(json.loads(json.loads(got[0]["Body"])["Message"])["token"])
            for _ in range(250):
                done = sfn().describe_execution(executionArn=arn)
                if done["status"] != "RUNNING":
                    return done
                time.sleep(0.02)
            raise AssertionError(f"{name} still running")

        done = answered("yes", lambda t: sfn().send_task_success(taskToken=t, output='{"approved": true}'))
        assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"approved": True}, done
        done = answered("no", lambda t: sfn().send_task_failure(taskToken=t, error="Rejected", cause="not now"))
        assert (done["status"], done.get("error"), done.get("cause")) == ("FAILED", "Rejected", "not now"), done

    def sfn_task_fails_fast_with_message(ctx: dict[str, Any]) -> None:
        machine = create("drflow-missing", {"StartAt": "Get", "States": {
            "Get": task("ssm:getParameter", {"Name": "/drflow/none"}, End=True)}})
        run = execute(machine, "missing-1")
        assert run["status"] == "FAILED" and run["elapsed"] < 2, (run["status"], run["elapsed"])
        assert run["error"] == "Ssm.ParameterNotFoundException", run["error"]
        assert run["cause"].startswith("Parameter /drflow/none not found. (Service: Ssm, Status Code: 400"), \
            run["cause"]
        # a Catch on AWS's name, and a Fail whose cause is the caught message
        machine = create("drflow-caught", {"StartAt": "Job", "States": {
            "Job": task("backup:describeBackupJob", {"BackupJobId": "no-such-job"}, End=True, Catch=[{
                "ErrorEquals": ["Backup.ResourceNotFoundException"], "ResultPath": "$.error", "Next": "Failed"}]),
            "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}}})
        run = execute(machine, "caught-1")
        assert run["status"] == "FAILED" and run["error"] == "Backup.ResourceNotFoundException", run.get("error")
        assert run["cause"].startswith("Backup job no-such-job not found. (Service: Backup, Status Code: 400"), \
            run["cause"]

    def sfn_region_of_the_state_machine(ctx: dict[str, Any]) -> None:
        api.client("ssm", DR).put_parameter(Name="/drflow/where", Value="dr", Type="String")
        definition = {"StartAt": "Get", "States": {"Get": task(
            "ssm:getParameter", {"Name": "/drflow/where"}, ResultSelector={"Value.$": "$.Parameter.Value"},
            End=True)}}
        run = execute(create("drflow-where", definition, DR), "where-1")
        assert run["status"] == "SUCCEEDED" and json.loads(run["output"]) == {"Value": "dr"}, run.get("error")
        run = execute(create("drflow-where", definition, PRIMARY), "where-1")  # none in the primary region
        assert run["error"] == "Ssm.ParameterNotFoundException", run.get("error")
        assert [c["region"] for c in calls("GetParameter") if c["request"] == {"Name": "/drflow/where"}] == [DR, PRIMARY]

    def sfn_reset_stops_executions(ctx: dict[str, Any]) -> None:
        machine = create("drflow-forever", {"StartAt": "Get", "States": {
            "Get": task("sts:getCallerIdentity", {}, ResultPath=None, Next="Wait"),
            "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Again"},
            "Again": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Stop"}],
                      "Default": "Get"},
            "Stop": {"Type": "Succeed"}}})
        arn = sfn().start_execution(stateMachineArn=machine, name="forever")["executionArn"]
        deadline = time.monotonic() + 5
        while not calls("GetCallerIdentity") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls("GetCallerIdentity"), "the execution never called"
        api.control("POST", "/_drflow/reset")
        time.sleep(0.3)  # 6 loops of the execution, had it survived
        assert api.control("GET", "/_drflow/calls") == [], api.control("GET", "/_drflow/calls")
        e = api.error_of(lambda: sfn().describe_execution(executionArn=arn))
        assert api.code(e) == "ExecutionDoesNotExist", api.code(e)
        # in real time, an execution waiting 30 s to retry a failed call: the reset cuts the wait short
        api.control("POST", "/_drflow/sfn", {"time_scale": 1})  # as it was
        machine = create("drflow-retrying", {"StartAt": "Get", "States": {"Get": task(
            "ssm:getParameter", {"Name": "/drflow/none"}, End=True,
            Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 3}])}})
        sfn().start_execution(stateMachineArn=machine, name="retrying")
        while not calls("GetParameter") and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        started = time.monotonic()
        api.control("POST", "/_drflow/reset")
        assert time.monotonic() - started < 2, time.monotonic() - started
        time.sleep(0.3)
        assert api.control("GET", "/_drflow/calls") == [], api.control("GET", "/_drflow/calls")

    def cross_region_function(ctx: dict[str, Any]) -> None:
        spec = importlib.util.spec_from_file_location("cross_region", CROSS_REGION)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        env = {"AWS_ENDPOINT_URL": api.URL, "AWS_ACCESS_KEY_ID": "AKIDLAMBDA", "AWS_SECRET_ACCESS_KEY": "sk",
               "AWS_SESSION_TOKEN": "token"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            for region in (PRIMARY, DR):
                put = module.handler({"region": region, "service": "ssm", "action": "PutParameter", "parameters": {
                    "Name": "/drflow/cross", "Value": f"in {region}", "Type": "String", "Overwrite": True}})
                assert put == {"Version": 1, "Tier": "Standard"}, put
                got = module.handler({"region": region, "service": "ssm", "action": "GetParameter",
                                      "parameters": {"Name": "/drflow/cross"}})
                json.dumps(got)  # JSON as it is
                assert got["Parameter"]["Value"] == f"in {region}", got
                assert isinstance(got["Parameter"]["LastModifiedDate"], str), got
                images = module.handler({"region": region, "service": "ec2", "action": "describeImages",
                                         "parameters": {"Owners": ["amazon"]}})
                assert images["Images"] and images["Images"][0]["ImageId"].startswith("ami-")
            assert [c["region"] for c in calls("PutParameter") if c["request"].get("Name") == "/drflow/cross"] \
                == [PRIMARY, DR]
            api.control("POST", "/_drflow/faults", {"service": "ssm", "region": DR, "code": "ThrottlingException",
                                                    "message": "Rate exceeded"})
            for event, name, message in [
                    ({"region": DR, "service": "ssm", "action": "GetParameter", "parameters": {"Name": "/x"}},
                     "ThrottlingException", "Rate exceeded"),  # once only: no SDK retry inside the function
                    ({"region": DR, "service": "ssm", "action": "GetParameter", "parameters": {"Name": "/none"}},
                     "ParameterNotFound", "Parameter /none not found."),
                    ({"region": PRIMARY, "service": "ec2", "action": "DescribeImages",
                      "parameters": {"ImageIds": ["ami-00000000"]}}, "InvalidAMIID.NotFound", None)]:
                try:
                    module.handler(event)
                    raise AssertionError(f"{event} did not fail")
                except AssertionError:
                    raise
                except Exception as e:
                    assert type(e).__name__ == name, (type(e).__name__, e)
                    assert message is None or str(e) == message, str(e)
        finally:
            api.control("DELETE", "/_drflow/faults")
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def sfn_task_credentials_call_as_the_role(ctx: dict[str, Any]) -> None:
        """A Task with Credentials calls as that role (assumed by the execution role): the parameter lands in the
        role's account; a role whose trust does not allow the execution role fails the task with STS's message."""
        other = "333333333333"
        as_other = api.boto3.client("iam", region_name=PRIMARY, endpoint_url=api.URL, aws_access_key_id=other,
                                    aws_secret_access_key="secret")
        execution = api.client("iam").create_role(RoleName="drflow-sfn-xa", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        api.client("iam").put_role_policy(RoleName="drflow-sfn-xa", PolicyName="assume", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
        for name, trusted in (("dr-trusting", execution), ("dr-not-trusting", f"arn:aws:iam::{ACCOUNT}:role/other")):
            as_other.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted},
                                                        "Action": "sts:AssumeRole"}]}))
            as_other.put_role_policy(RoleName=name, PolicyName="ssm", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:PutParameter",
                                                        "Resource": "*"}]}))
        definition = {"StartAt": "Put", "States": {"Put": task(
            "ssm:putParameter", {"Name": "/drflow/xa", "Value": "v", "Type": "String", "Overwrite": True},
            Credentials={"RoleArn.$": "$.role"}, End=True)}}
        created["credentials"] = definition
        machine = sfn().create_state_machine(name="drflow-credentials", definition=json.dumps(definition),
                                             roleArn=execution)["stateMachineArn"]
        ok = execute(machine, "xa-ok", {"role": f"arn:aws:iam::{other}:role/dr-trusting"})
        assert ok["status"] == "SUCCEEDED", (ok.get("error"), ok.get("cause"))
        put = [c for c in calls("PutParameter") if c["request"].get("Name") == "/drflow/xa"]
        assert [c["account"] for c in put] == [other], put
        ssm_other = api.boto3.client("ssm", region_name=PRIMARY, endpoint_url=api.URL, aws_access_key_id=other,
                                     aws_secret_access_key="secret")
        assert ssm_other.get_parameter(Name="/drflow/xa")["Parameter"]["Value"] == "v"
        assert api.code(api.error_of(lambda: api.client("ssm").get_parameter(Name="/drflow/xa"))) == "ParameterNotFound"
        refused = execute(machine, "xa-refused", {"role": f"arn:aws:iam::{other}:role/dr-not-trusting"})
        assert refused["status"] == "FAILED" and refused["error"] == "States.TaskFailed", refused.get("error")
        assert "is not authorized to perform: sts:AssumeRole on resource: " \
               f"arn:aws:iam::{other}:role/dr-not-trusting" in refused["cause"], refused["cause"]
        assert f"assumed-role/drflow-sfn-xa/xa-refused" in refused["cause"], refused["cause"]

    def asl_linters(ctx: dict[str, Any]) -> None:
        """The linters of scripts/emulator-venv accept every state machine above and refuse a broken one."""
        statelint = os.path.join(os.path.dirname(sys.executable), "statelint")
        validator = os.path.join(sys.prefix, "npm", "node_modules", ".bin", "asl-validator")
        broken = {"StartAt": "Get", "States": {"Get": task("ssm:getParameter", {}, Next="Nowhere")}}
        with tempfile.TemporaryDirectory() as tmp:
            for name, definition in [*created.items(), ("broken", broken)]:
                path = os.path.join(tmp, f"{name}.asl.json")
                with open(path, "w") as f:
                    json.dump(definition, f)
                for command in ([statelint, path], [validator, "--json-path", path]):
                    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
                    assert (done.returncode == 0) == (name != "broken"), (name, command[0], done.stdout, done.stderr)
                    if name == "broken":
                        assert "Nowhere" in done.stdout + done.stderr, (command[0], done.stdout, done.stderr)
        assert len(created) >= 10, sorted(created)

    return [(f.__name__, f) for f in (
        sfn_settings, sfn_pipeline_one_region, sfn_map_over_three_items, sfn_parallel_and_intrinsics,
        sfn_escapes_and_callbacks, sfn_task_fails_fast_with_message, sfn_region_of_the_state_machine,
        sfn_reset_stops_executions, sfn_task_credentials_call_as_the_role, cross_region_function, asl_linters)]
