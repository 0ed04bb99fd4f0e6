"""API wiring: JWT bound to the host, the token views, the OpenAPI schema and its hooks."""
