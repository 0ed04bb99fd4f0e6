"""Which queues the local runner polls: the delivery queues (shared and silo) and every SQS
producer's source queue (the config table's live `SOURCEQUEUE#<arn>` items)."""

import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError

from broker.functions import config, settings
from broker.functions.local.options import Options
from broker.functions.shared import arn as arns
from broker.functions.shared import contract

log = logging.getLogger("broker.functions.runner")

DELIVERY = "delivery"
SOURCE = "source"


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    kind: str  # DELIVERY or SOURCE
    concurrency: int


class Discovery:
    """Finds the queues to poll. Its own boto3 client: pollers' long polls never wait for it."""

    def __init__(self, client, options: Options):
        self.sqs = client("sqs")
        self.ddb = client("dynamodb")
        self.options = options
        self._arns: dict[str, str] = {}  # queue url → arn
        self._missing_logged: set[str] = set()

    def queues(self) -> dict[str, Queue]:
        s = settings.get()
        found: dict[str, Queue] = {}
        for prefix in (f"{s.queue_prefix}-delivery-", f"{s.queue_prefix}-silo-"):
            for url in self._list(prefix):
                name = url.rsplit("/", 1)[-1]
                if name.endswith("-dlq"):
                    continue
                silo = prefix.endswith("-silo-")
                concurrency = (
                    self._silo_concurrency(name[len(prefix) :])
                    if silo
                    else self.options.pool_concurrency
                )
                found[url] = Queue(url, self._arn(url), DELIVERY, concurrency)
        for queue_arn in self._source_queue_arns():
            url = self._source_url(queue_arn)
            if url:
                found[url] = Queue(url, queue_arn, SOURCE, 1)
        return found

    def _list(self, prefix: str) -> list[str]:
        urls, kwargs = [], {}
        while True:
            page = self.sqs.list_queues(QueueNamePrefix=prefix, MaxResults=1000, **kwargs)
            urls.extend(page.get("QueueUrls", []))
            if not page.get("NextToken"):
                return urls
            kwargs = {"NextToken": page["NextToken"]}

    def _arn(self, url: str) -> str:
        if url not in self._arns:
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._arns[url] = attrs["Attributes"]["QueueArn"]
        return self._arns[url]

    def _silo_concurrency(self, tenant_id: str) -> int:
        """The largest `concurrency` of the tenant's enabled consumers (1 when none)."""
        best, kwargs = 1, {}
        while True:
            try:
                page = self.ddb.query(
                    TableName=settings.get().config_table,
                    KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
                    ExpressionAttributeValues={
                        ":pk": {"S": contract.tenant_pk(tenant_id)},
                        ":c": {"S": "CONSUMER#"},
                    },
                    **kwargs,
                )
            except ClientError:
                return best
            for item in map(config.deserialize, page.get("Items", [])):
                if contract.is_live(item) and item.get("enabled", True):
                    best = max(best, int(item.get("concurrency") or 1))
            if "LastEvaluatedKey" not in page:
                return min(best, self.options.max_concurrency)
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _source_queue_arns(self) -> list[str]:
        """ARNs of the live SOURCEQUEUE items. A scan, fine for a local runner: in AWS each
        SQS producer's event source mapping is created with the producer."""
        out, kwargs = [], {}
        while True:
            try:
                page = self.ddb.scan(
                    TableName=settings.get().config_table,
                    FilterExpression="begins_with(PK, :p) AND SK = :sk",
                    ExpressionAttributeValues={
                        ":p": {"S": contract.source_queue_pk("")},
                        ":sk": {"S": contract.SOURCE_QUEUE_SK},
                    },
                    **kwargs,
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    return []  # a fresh moto server: the portal has not bootstrapped yet
                raise
            for item in map(config.deserialize, page.get("Items", [])):
                if contract.is_live(item):
                    out.append(item["PK"][len(contract.source_queue_pk("")) :])
            if "LastEvaluatedKey" not in page:
                return out
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _source_url(self, queue_arn: str) -> str | None:
        for url, known in self._arns.items():
            if known == queue_arn:
                return url
        try:
            parsed = arns.parse_sqs_arn(queue_arn)
            url = self.sqs.get_queue_url(
                QueueName=parsed.name, QueueOwnerAWSAccountId=parsed.account
            )["QueueUrl"]
        except (arns.ArnError, ClientError) as exc:
            if queue_arn not in self._missing_logged:
                self._missing_logged.add(queue_arn)
                log.warning("source queue %s is not pollable: %s", queue_arn, exc)
            return None
        self._missing_logged.discard(queue_arn)
        self._arns[url] = queue_arn
        return url
