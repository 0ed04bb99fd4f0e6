"""CONSUMER_PRIVATE_TARGETS: a few listed private host:port targets are allowed, nothing else."""

import socket

import pytest

from broker import services
from broker.functions.shared.ssrf import UnsafeURL, check_url, parse_private_targets
from core.errors import ApplicationError

TARGETS = parse_private_targets("127.0.0.1:8200-8299, receiver.internal:8080")


def resolver(*answers):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8200/hook",
        "http://127.0.0.1:8299/",
        "https://127.0.0.1:8250/x",
        "http://127.1:8200/hook",  # the same address in another notation
        "http://receiver.internal:8080/in",
    ],
)
def test_a_listed_private_target_is_allowed_even_over_plain_http(url):
    addresses = check_url(url, private_targets=TARGETS, resolve=resolver("10.1.2.3"))
    assert addresses


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8300/hook",  # port outside the range
        "http://127.0.0.1/hook",  # default port 80
        "https://127.0.0.2:8200/",  # another address
        "http://localhost:8200/",  # a name is not the listed address
        "http://receiver.internal:8081/",
        "http://10.0.0.1:8200/",
    ],
)
def test_anything_not_listed_stays_refused(url):
    with pytest.raises(UnsafeURL):
        check_url(url, private_targets=TARGETS, resolve=resolver("127.0.0.1"))


def test_metadata_addresses_are_never_allowed_even_when_listed():
    targets = parse_private_targets(["169.254.169.254:80", "meta.internal:80"])
    with pytest.raises(UnsafeURL):
        check_url("http://169.254.169.254/latest/meta-data/", private_targets=targets)
    with pytest.raises(UnsafeURL):
        check_url(
            "http://meta.internal/", private_targets=targets, resolve=resolver("169.254.169.254")
        )


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:9-1", ":80", "h:0"])
def test_a_malformed_entry_is_an_error_not_silently_ignored(bad):
    with pytest.raises(ValueError):
        parse_private_targets(bad)


def test_an_empty_setting_allows_nothing():
    assert parse_private_targets("") == ()
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:8200/", private_targets=parse_private_targets(""))


@pytest.mark.django_db
def test_the_portal_accepts_a_listed_private_target_and_refuses_other_private_urls(
    world, in_a, settings
):
    settings.CONSUMER_PRIVATE_TARGETS = ("127.0.0.1:8200-8299",)
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="demo", kind="https", url="http://127.0.0.1:8200/hook"
    )
    assert consumer.url == "http://127.0.0.1:8200/hook"

    with pytest.raises(ApplicationError):
        services.consumer_create(
            actor=world.admin_a, name="other", kind="https", url="http://127.0.0.1:9000/hook"
        )


@pytest.mark.django_db
def test_the_portal_refuses_private_urls_when_nothing_is_listed(world, in_a, settings):
    settings.CONSUMER_PRIVATE_TARGETS = ()
    with pytest.raises(ApplicationError):
        services.consumer_create(
            actor=world.admin_a, name="demo", kind="https", url="http://127.0.0.1:8200/hook"
        )
