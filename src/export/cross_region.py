# drflow's cross-region call function (AWS Lambda, Python 3.12), for the Task states of an exported state machine
# that call a service in another region than the state machine's own (AWS SDK integrations cannot).
# Event: {"region": "us-west-2", "service": "ssm", "action": "PutParameter", "parameters": {...}}; answer: the API's
# answer as JSON (timestamps as ISO-8601 strings, blobs base64). An AWS error is raised as an exception whose class
# name is the AWS error code (ParameterNotFound, ThrottlingException, ...): Lambda reports that name as the error, so
# Retry / Catch match it by that name. The SDK does not retry here: the state's Retry does. boto3 honours
# AWS_ENDPOINT_URL.
import base64
import datetime
import functools

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError


@functools.lru_cache(maxsize=None)
def client(service, region):
    return boto3.client(service, region_name=region, config=Config(retries={"total_max_attempts": 1}))


def as_json(value):
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def handler(event, context=None):
    call = getattr(client(event["service"], event["region"]), xform_name(event["action"]))
    try:
        return as_json(call(**event.get("parameters", {})))
    except ClientError as e:
        error = e.response.get("Error", {})
        raise type(error.get("Code") or "ClientError", (Exception,), {})(error.get("Message") or str(e)) from None
