"""Numbers on pages are grouped as the reader's language writes them, but never the numbers a
machine reads back: ids in links and forms stay plain digits."""

import pytest
from django.test import Client

from tenants.models import Membership
from tests.helpers import host_of, make_user

pytestmark = pytest.mark.django_db


def test_a_large_member_id_stays_plain_digits_in_the_remove_form(world):
    member = make_user("many@a.test")
    Membership.objects.create(pk=1234567, user=member, tenant=world.a, role="viewer")
    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.admin_a)
    page = client.get("/").content.decode()
    assert 'action="/members/1234567/"' in page


def test_the_dashboards_quotas_read_as_words_with_grouped_numbers(world):
    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.admin_a)
    page = client.get("/").content.decode()
    quota = world.a.effective_quotas()["daily_event_quota"]
    assert "DLQ retention days" in page and "API requests per minute" in page
    assert "Dlq" not in page and "Api requests" not in page
    assert f"{quota:,}" in page and f"> {quota}<" not in page
