"""The kernel every app builds on: errors, API helpers, AWS clients, idempotency, throttling,
request context. A leaf: it imports no app of this project (import-linter holds it)."""
