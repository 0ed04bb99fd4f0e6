"""Deploys deploy/template.yaml into the AWS emulator with CloudFormation, as AWS would run it.

    python -m broker.functions.local.stack deploy [--env-file var/stack.env]

The one source of the data plane's resources, here as on AWS: its tables, the central DLQ, the
shared delivery queues, the functions' roles, the functions and the shared queues' event source
mappings all come from the template (CreateStack, or UpdateStack when the stack exists).
`manage.py bootstrap_aws` creates only the control plane's own config table.

What the emulator needs that AWS does not:
- an object at the code's S3 key: moto never runs the code (the local runner does, from this
  checkout), so a small stub is enough; with `--code` the zip of scripts/package_functions.py
  goes there instead;
- `CreateFunctionUrl=false`: moto has no `AWS::Lambda::Url` (the runner serves the ingress on
  its own HTTP port instead);
- the secrets' key: the template requires `SecretsArn`; without one given, the portal's Fernet
  keys are put into a Secrets Manager secret (`<stack>/fernet-keys`) and its ARN is passed, as a
  deployment without KMS would do by hand (docs/data-plane.md, "Deploying").

Parameters come from the same environment variables the portal reads (SQS_QUEUE_PREFIX,
DYNAMODB_CONFIG_TABLE, …), so the stack and the portal agree by construction; the outputs
(function ARNs, table names, the DLQ's URL) are written as `NAME=value` lines for the portal's
processes to read (`--env-file`).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import ClientError, WaiterError
from cfnlint.decode import decode_str

from broker.functions.shared import secrets

TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "template.yaml"
STUB_CODE = b"moto never runs this code: the local runner does (broker/functions/runner.py)\n"

# Stack output → the setting (portal) and environment variable that carries it.
OUTPUT_SETTINGS = {
    "EgressFunctionArn": "EGRESS_FUNCTION_ARN",
    "SqsProducerFunctionArn": "SQS_PRODUCER_FUNCTION_ARN",
    "IngressFunctionArn": "INGRESS_FUNCTION_ARN",
    "EgressTimeout": "EGRESS_FUNCTION_TIMEOUT",
    "DataplaneTableName": "DATAPLANE_TABLE",
    "IdempotencyTableName": "IDEMPOTENCY_TABLE",
    "CentralDlqUrl": "CENTRAL_DLQ_URL",
    "CentralFifoDlqUrl": "CENTRAL_FIFO_DLQ_URL",
}


def parameters_from_env(env=os.environ) -> dict[str, str]:
    """The template's parameters as the portal's settings name them."""
    params = {
        "QueuePrefix": env.get("SQS_QUEUE_PREFIX", "broker"),
        "TenantQueuePrefix": env.get("TENANT_QUEUE_PREFIX", "tenant-"),
        "ConfigTableName": env.get("DYNAMODB_CONFIG_TABLE", "broker-config"),
        "DataplaneTableName": env.get("DATAPLANE_TABLE", "broker-dataplane"),
        "IdempotencyTableName": env.get("IDEMPOTENCY_TABLE", "broker-idempotency"),
        "ConsumerPrivateTargets": env.get("CONSUMER_PRIVATE_TARGETS", ""),
        "ConsumerHttpAllowedHosts": env.get("CONSUMER_HTTP_ALLOWED_HOSTS", ""),
    }
    if env.get("SECRETS_KMS_KEY_ID", "").startswith("arn:"):
        params["SecretsArn"] = env["SECRETS_KMS_KEY_ID"]
    elif env.get("SECRETS_FERNET_SECRET_ARN"):
        params["SecretsArn"] = env["SECRETS_FERNET_SECRET_ARN"]
    for name, variable in (
        ("PoolQueueMaxConcurrency", "POOL_QUEUE_MAX_CONCURRENCY"),
        ("EgressTimeout", "EGRESS_FUNCTION_TIMEOUT"),
        ("DeliveryVisibilityTimeout", "DELIVERY_VISIBILITY_TIMEOUT"),
        ("OrderedQueueCount", "SHARED_ORDERED_QUEUES"),
        ("OrderedRedriveMaxReceiveCount", "ORDERED_REDRIVE_MAX_RECEIVE_COUNT"),
    ):
        if env.get(variable):
            params[name] = env[variable]
    return params


class Stack:
    """One CloudFormation stack of the template in one account and region."""

    def __init__(self, *, name: str = "broker", session=None, endpoint_url=None, region=None):
        self.name = name
        session = session or boto3.session.Session()
        kwargs = {"endpoint_url": endpoint_url, "region_name": region or session.region_name}
        self.cfn = session.client("cloudformation", **kwargs)
        self.s3 = session.client("s3", **kwargs)
        self.secrets = session.client("secretsmanager", **kwargs)
        self._ddb = session.client("dynamodb", **kwargs)
        self._lambda = session.client("lambda", **kwargs)
        self.region = kwargs["region_name"]

    def fernet_secret(self, keys: list[str]) -> str:
        """The ARN of `<stack>/fernet-keys`, holding `keys` (comma-separated), created or
        updated: what the template's SecretsArn names when no KMS key is used."""
        name, value = f"{self.name}/fernet-keys", ",".join(keys)
        try:
            return self.secrets.create_secret(Name=name, SecretString=value)["ARN"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
        self.secrets.put_secret_value(SecretId=name, SecretString=value)
        return self.secrets.describe_secret(SecretId=name)["ARN"]

    def upload_code(self, code: bytes | None) -> tuple[str, str]:
        bucket, key = f"{self.name}-functions", "functions.zip"
        try:
            if self.region == "us-east-1":
                self.s3.create_bucket(Bucket=bucket)
            else:
                self.s3.create_bucket(
                    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        self.s3.put_object(Bucket=bucket, Key=key, Body=code or STUB_CODE)
        return bucket, key

    def exists(self) -> bool:
        try:
            stacks = self.cfn.describe_stacks(StackName=self.name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return False
            raise
        return any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)

    def deploy(
        self,
        parameters: dict[str, str],
        *,
        fernet_keys: list[str] | None = None,
        code: bytes | None = None,
        function_url: bool = False,
    ) -> dict[str, str]:
        """CreateStack or UpdateStack, waited for; returns the stack's outputs."""
        params = dict(parameters)
        if "SecretsArn" not in params:
            if not fernet_keys:
                raise ValueError(
                    "The template requires SecretsArn: give a KMS key ARN or the Fernet keys "
                    "to put into a Secrets Manager secret."
                )
            params["SecretsArn"] = self.fernet_secret(fernet_keys)
        bucket, key = self.upload_code(code)
        params.update(
            CodeS3Bucket=bucket, CodeS3Key=key, CreateFunctionUrl=str(function_url).lower()
        )
        call = {
            "StackName": self.name,
            "TemplateBody": TEMPLATE.read_text(),
            "Parameters": [
                {"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()
            ],
            "Capabilities": ["CAPABILITY_IAM"],
        }
        if self.exists():
            try:
                self.cfn.update_stack(**call)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
            waiter = "stack_update_complete"
        else:
            self.cfn.create_stack(**call)
            waiter = "stack_create_complete"
        try:
            self.cfn.get_waiter(waiter).wait(
                StackName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
            )
        except WaiterError as exc:
            raise RuntimeError(f"stack {self.name}: {exc}") from exc
        self._apply_what_moto_drops()
        return self.outputs()

    def _apply_what_moto_drops(self) -> None:
        """moto's CloudFormation creates the tables without their TimeToLiveSpecification
        (docs/aws-differences.md): enable TTL on the stack's tables as the template says."""
        template = _template()
        ddb = self._ddb
        for resource in self.resources():
            if resource.get("ResourceType") != "AWS::DynamoDB::Table":
                continue
            spec = template["Resources"][resource["LogicalResourceId"]]["Properties"]
            ttl = spec.get("TimeToLiveSpecification")
            if not ttl or not ttl.get("Enabled"):
                continue
            name = resource["PhysicalResourceId"]
            status = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={
                        "Enabled": True,
                        "AttributeName": ttl["AttributeName"],
                    },
                )

    def outputs(self) -> dict[str, str]:
        stack = self.cfn.describe_stacks(StackName=self.name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def resources(self) -> list[dict]:
        return self.cfn.describe_stack_resources(StackName=self.name)["StackResources"]

    def describe(self) -> str:
        """The stack's resources by type and every event source mapping in the account (the
        template's and those provisioning made): what `make run`'s banner shows."""
        counts: dict[str, int] = {}
        for resource in self.resources():
            kind = resource.get("ResourceType")
            if kind:
                counts[kind.split("::")[-1]] = counts.get(kind.split("::")[-1], 0) + 1
        lines = [f"stack {self.name}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))]
        lam = self._lambda
        mappings, kwargs = [], {}
        while True:
            page = lam.list_event_source_mappings(**kwargs)
            mappings += page.get("EventSourceMappings", [])
            if not page.get("NextMarker"):
                break
            kwargs = {"Marker": page["NextMarker"]}
        for m in sorted(mappings, key=lambda m: m["EventSourceArn"]):
            concurrency = (m.get("ScalingConfig") or {}).get("MaximumConcurrency", "-")
            lines.append(
                f"  {m['EventSourceArn'].rsplit(':', 1)[-1]:<52} → "
                f"{m['FunctionArn'].rsplit(':', 1)[-1]:<20} {m['State']:<9} "
                f"batch {m.get('BatchSize')}, concurrency {concurrency}"
            )
        return "\n".join(lines)


def _template() -> dict:
    """The template parsed, its short-form intrinsics (`!Ref`, `!Sub`, …) understood."""
    parsed, errors = decode_str(TEMPLATE.read_text())
    if errors:
        raise RuntimeError(f"{TEMPLATE} does not parse: {errors}")
    return parsed


def settings_from_outputs(outputs: dict[str, str]) -> dict[str, str]:
    """The outputs under the names of the settings that carry them."""
    return {OUTPUT_SETTINGS[k]: v for k, v in outputs.items() if k in OUTPUT_SETTINGS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.functions.local.stack")
    parser.add_argument("action", choices=["deploy", "outputs", "describe"])
    parser.add_argument("--name", default=os.environ.get("STACK_NAME", "broker"))
    parser.add_argument("--env-file", type=Path, help="write the outputs as NAME=value lines")
    parser.add_argument("--code", type=Path, help="the functions' zip (default: a stub)")
    args = parser.parse_args(argv)
    stack = Stack(name=args.name, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    started = time.monotonic()
    if args.action == "describe":
        print(stack.describe())
        return 0
    if args.action == "deploy":
        # The portal's Fernet keys as it uses them (SECRETS_FERNET_KEYS, or the one derived
        # from DJANGO_SECRET_KEY), for the secret the egress reads when no KMS key is set.
        keys = secrets.fernet_keys_in_use(
            keys=os.environ.get("SECRETS_FERNET_KEYS", "").split(","),
            secret_key=os.environ.get("DJANGO_SECRET_KEY", ""),
        )
        outputs = stack.deploy(
            parameters_from_env(),
            fernet_keys=keys,
            code=args.code.read_bytes() if args.code else None,
        )
    else:
        outputs = stack.outputs()
    values = settings_from_outputs(outputs)
    if args.env_file:
        args.env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    counts: dict[str, int] = {}
    for resource in stack.resources():
        kind = resource.get("ResourceType", "?::unnamed").split("::")[-1]
        counts[kind] = counts.get(kind, 0) + 1
    print(
        f"stack {args.name}: "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        + f" ({time.monotonic() - started:.1f} s)"
    )
    for key, value in sorted(values.items()):
        print(f"  {key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
