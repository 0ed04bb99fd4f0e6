"""Configuration as code: the tenant's configuration as one document (export), the changes a
document makes to it (plan), making them in one transaction through the services (apply), and
the revisions every committed change leaves behind (history, diff, rollback).

docs/config-as-code.md describes the document and the flow.
"""
