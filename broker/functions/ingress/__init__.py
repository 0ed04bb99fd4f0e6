"""The ingress: HTTPS producers (`handler`) and SQS producers (`sqs_source_handler`).

Modules: `api` (HTTP request → response), `sqs_source` (source-queue records → failures),
`service` (checks, limits, de-duplication and routing of a request's events), `envelope`,
`auth`, `limits`, `routing`, `errors`. docs/data-plane.md describes the behaviour.
"""

from .handlers import handler, sqs_source_handler
from .limits import flush_stats

__all__ = ["flush_stats", "handler", "sqs_source_handler"]
