"""tenants reaches broker only through hooks that broker registers (tenants/hooks.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tenants import hooks


def test_broker_registers_every_hook_tenants_declares():
    assert set(hooks._registered) == set(hooks.HOOKS)


def test_a_hook_nobody_registered_is_a_configuration_error_not_a_silent_no_op(monkeypatch):
    monkeypatch.setattr(hooks, "_registered", {})
    with pytest.raises(ImproperlyConfigured, match="tenant_audit"):
        hooks.tenant_audit(object(), actor=None, action="x", object_type="x", object_id=1)


def test_an_unknown_hook_name_cannot_be_registered():
    with pytest.raises(ImproperlyConfigured, match="Unknown tenant hook"):
        hooks.register(tenant_teleported=lambda tenant: None)


def test_tenants_never_reaches_a_higher_app_by_name():
    """import-linter sees imports, not `apps.get_app_config("broker")` or
    `apps.get_model("broker", …)`: such a lookup reaches up a layer unseen. Hooks instead."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "tenants"
    by_name = re.compile(
        r"""apps\.get_(?:app_config|model|models)\(\s*["'](?:broker|portal|sync|dlq|activity)"""
    )
    found = [
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if "migrations" not in path.parts and by_name.search(path.read_text())
    ]
    assert found == []
