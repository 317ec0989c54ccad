"""drflow's cross-region call function (placeholder until helper sfn-emu's handler is merged).

Contract: event {"region": "us-west-2", "service": "ssm", "action": "PutParameter", "parameters": {...}} ->
the API's answer (JSON; datetimes as ISO-8601 strings). An AWS error is raised as an exception whose class name is
the AWS error code (e.g. ThrottlingException), so a state machine's Retry/Catch can name it.
"""
import datetime
import re

import boto3
import botocore.exceptions


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if k != "ResponseMetadata"}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    return v


def handler(event, _context):
    client = boto3.client(event["service"], region_name=event["region"])
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", event["action"]).lower()
    try:
        answer = getattr(client, method)(**event.get("parameters", {}))
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "ClientError")
        raise type(code, (Exception,), {})(str(e)) from None
    return _plain(answer)
