"""SQS queue ARNs: parsed and checked field by field."""

import re
from dataclasses import dataclass

PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class ArnError(ValueError):
    pass


@dataclass(frozen=True)
class SqsArn:
    partition: str
    region: str
    account: str
    name: str

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")


def parse_sqs_arn(value: str) -> SqsArn:
    if not isinstance(value, str) or not value.startswith("arn:"):
        raise ArnError("An SQS queue ARN: arn:aws:sqs:<region>:<account>:<queue name>.")
    parts = value.split(":")
    if len(parts) != 6:
        raise ArnError("An SQS queue ARN has six parts: arn:aws:sqs:<region>:<account>:<name>.")
    _, partition, service, region, account, name = parts
    if partition not in PARTITIONS:
        raise ArnError(f"Unknown partition {partition!r}.")
    if service != "sqs":
        raise ArnError(f"Not an SQS ARN (service {service!r}).")
    if not REGION_RE.match(region):
        raise ArnError(f"Not a region: {region!r}.")
    if not ACCOUNT_RE.match(account):
        raise ArnError("The account id has 12 digits.")
    base = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if not NAME_RE.match(base) or len(name) > 80:
        raise ArnError("Queue names have 1-80 letters, digits, hyphens or underscores.")
    return SqsArn(partition=partition, region=region, account=account, name=name)


def queue_url_from_arn(value: str, endpoint_url: str | None = None) -> str:
    arn = parse_sqs_arn(value)
    if endpoint_url:
        return f"{endpoint_url.rstrip('/')}/{arn.account}/{arn.name}"
    domain = "amazonaws.com.cn" if arn.partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{arn.region}.{domain}/{arn.account}/{arn.name}"
