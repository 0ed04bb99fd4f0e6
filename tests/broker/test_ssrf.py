"""Consumer URLs: every way of naming a non-public address is refused."""

import socket

import pytest

from broker.functions.shared.ssrf import UnsafeURL, check_url


def resolver(*answers):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    return resolve


def no_dns(*args, **kwargs):
    raise AssertionError("an IP literal must not need DNS")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://10.0.0.1/",
        "https://172.16.10.65/",
        "https://192.168.10.65/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.100.0.0/",
        "https://100.100.100.200/",
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/",
        "https://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "https://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "https://224.0.0.1/",
        "https://240.0.0.1/",
        "https://255.255.255.255/",
        "https://2130706433/",  # decimal 127.0.0.1
        "https://0x7f.1/",  # hex, short form
        "https://0177.0.0.1/",  # octal
        "https://127.1/",
        "https://10.1/",
        "https://0/",
    ],
)
def test_non_public_ip_literals_are_refused_in_any_notation(url):
    with pytest.raises(UnsafeURL):
        check_url(url, resolve=no_dns)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://2130706433/", "https"),
        ("http://hooks.example.com/", "https"),
        ("ftp://hooks.example.com/", "https"),
        ("https://user:pw@hooks.example.com/", "user info"),
        ("https://hooks.example.com@127.0.0.1/", "user info"),
        ("https://localhost/", "public host"),
        ("https://api.localhost/", "public host"),
        ("https://metadata.google.internal/", "public host"),
        ("https://hooks.example.com /", "spaces"),
        ("https://hooks.example.com\\@evil/", "backslash"),
        ("https:///path", "no host"),
        ("", "Enter"),
    ],
)
def test_schemes_user_info_and_internal_names_are_refused(url, reason):
    with pytest.raises(UnsafeURL) as exc:
        check_url(url, resolve=resolver("93.184.215.14"))
    assert reason.lower() in str(exc.value).lower()


def test_a_host_resolving_to_a_private_address_is_refused():
    with pytest.raises(UnsafeURL) as exc:
        check_url("https://intranet.example.com/", resolve=resolver("10.0.0.5"))
    assert "10.0.0.5" in str(exc.value)


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(UnsafeURL):
        check_url("https://mixed.example.com/", resolve=resolver("93.184.215.14", "192.168.1.7"))


def test_a_host_that_does_not_resolve_is_refused():
    def fail(*args, **kwargs):
        raise socket.gaierror("Name or service not known")

    with pytest.raises(UnsafeURL, match="resolve"):
        check_url("https://nowhere.example.com/", resolve=fail)


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hook", "https://[2606:4700::1111]/", "https://8.8.8.8:8443/x?y=1"],
)
def test_public_addresses_are_accepted(url):
    assert check_url(url, resolve=no_dns)


def test_a_public_host_is_accepted_with_the_addresses_to_connect_to():
    addresses = check_url(
        "https://hooks.example.com/events", resolve=resolver("93.184.215.14", "2606:4700::1111")
    )
    assert [str(a) for a in addresses] == ["93.184.215.14", "2606:4700::1111"]


def test_plain_http_is_allowed_only_for_listed_development_hosts():
    public = resolver("93.184.215.14")
    allowed = frozenset({"dev.example.com"})
    assert check_url("http://dev.example.com/", allow_http_hosts=allowed, resolve=public)
    with pytest.raises(UnsafeURL):
        check_url("http://other.example.com/", allow_http_hosts=allowed, resolve=public)
