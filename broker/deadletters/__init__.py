"""Dead letters and replay (docs/design.md, flows 6 and 7): the tenant-schema models, the DLQ
ingest, the replay job runner, retention, the tenant API. The public-schema side (quarantine,
per-tenant DLQ alert state) is the `broker.dlq` shared app."""
