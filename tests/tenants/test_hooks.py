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
