"""The operator console: the tenant list with its platform summary, a tenant's page, their views."""
