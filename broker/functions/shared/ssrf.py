"""Consumer URLs the egress may call: https, a public host, no tricks.

Checked when a consumer is saved and again by the egress before each delivery (which then
connects to one of the addresses vetted here, so DNS cannot change its answer in between).

Private targets (`CONSUMER_PRIVATE_TARGETS`, e.g. `127.0.0.1:8200-8299,receiver:8080`): a
deployment may allow a few private `host:port` (or `host:first-last`) targets, a demo receiver
or an in-VPC service. A URL whose host is literally one of them (an IP in any notation matches
the same IP) and whose port is in the range skips the private-address rules and may use plain
http. Metadata addresses stay refused whatever the list says.

Plain-http hosts (`CONSUMER_HTTP_ALLOWED_HOSTS`, e.g. `hooks.staging.example.com`): these host
names may use http instead of https; everything else holds (public addresses only). The portal
(at save time) and the egress (at every attempt) pass the same two settings, so a consumer the
portal accepts is one the egress delivers to.
"""

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, whatever range they sit in.
METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
BLOCKED_NAMES = ("localhost", "metadata.google.internal", "metadata")
BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")


# Whitespace (`\s` is str.isspace()'s set), control characters, DEL and backslashes.
_REFUSED_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\]")


class UnsafeURL(ValueError):
    pass


@dataclass(frozen=True)
class PrivateTarget:
    host: str  # lower-case name, or the canonical text of an IP address
    first_port: int
    last_port: int

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and self.first_port <= port <= self.last_port


def _canonical_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        literal = parse_ip_literal(host)
    except UnsafeURL:
        return host
    return str(literal) if literal is not None else host


@functools.lru_cache(maxsize=32)
def _parse_private_targets(values: tuple[str, ...]) -> tuple[PrivateTarget, ...]:
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        host, sep, ports = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"CONSUMER_PRIVATE_TARGETS: {value!r} is not host:port.")
        first, _, last = ports.partition("-")
        try:
            first_port, last_port = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"CONSUMER_PRIVATE_TARGETS: bad port in {value!r}.") from None
        if not 0 < first_port <= last_port <= 65535:
            raise ValueError(f"CONSUMER_PRIVATE_TARGETS: bad port range in {value!r}.")
        host = _canonical_host(host)
        try:
            if ipaddress.ip_address(host) in METADATA:
                continue  # never allowed, whatever the list says
        except ValueError:
            pass
        out.append(PrivateTarget(host=host, first_port=first_port, last_port=last_port))
    return tuple(out)


def parse_private_targets(values: Iterable[str] | str) -> tuple[PrivateTarget, ...]:
    """`CONSUMER_PRIVATE_TARGETS` entries (a list, or one comma-separated string) → targets.
    Raises ValueError for a malformed entry; metadata addresses are dropped."""
    if isinstance(values, str):
        values = values.split(",")
    return _parse_private_targets(tuple(values))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped, -compatible, NAT64, 6to4 or Teredo one."""
    if addr.ipv4_mapped:
        return addr.ipv4_mapped
    if addr.sixtofour:
        return addr.sixtofour
    if addr.teredo:
        return addr.teredo[1]
    if addr in NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    packed = int(addr)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(packed)
    return None


def is_blocked_ip(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_ipv4(addr)
        if inner is not None:
            return True if addr.teredo else is_blocked_ip(inner)
        if addr.scope_id:
            return True
    if addr in METADATA:
        return True
    if isinstance(addr, ipaddress.IPv4Address) and addr in CGNAT:
        return True
    return (
        not addr.is_global
        or addr.is_multicast
        or addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_unspecified
    )


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP address in any notation a resolver accepts: dotted, decimal (2130706433), octal
    (0177.0.0.1), hex (0x7f.1), short (127.1), IPv6. None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(part for part in host.split(".")) and host.replace(".", "").isalnum():
        # inet_aton takes the legacy forms; only when every part looks numeric.
        parts = host.split(".")
        if len(parts) <= 4 and all(_numeric_part(p) for p in parts):
            try:
                return ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                raise UnsafeURL("Malformed IP address.") from None
    return None


def _numeric_part(part: str) -> bool:
    lower = part.lower()
    if lower.startswith("0x"):
        return all(c in "0123456789abcdef" for c in lower[2:])
    return lower.isdigit()


def check_url(
    url: str,
    *,
    allow_http_hosts: frozenset[str] = frozenset(),
    private_targets: Iterable[PrivateTarget] = (),
    resolve=None,
) -> list[IPAddress]:
    """Raises UnsafeURL unless the URL is safe to call; returns the vetted addresses.
    `allow_http_hosts` (`CONSUMER_HTTP_ALLOWED_HOSTS`, portal and egress alike): host names
    that may use plain http; their addresses must still be public.

    `resolve` defaults to `socket.getaddrinfo` looked up at call time (tests patch it)."""
    resolve = resolve or socket.getaddrinfo
    parts, host, port = _parse(url)
    if parts.scheme in ("http", "https") and private_targets:
        default_port = 80 if parts.scheme == "http" else 443
        canonical = _canonical_host(host)
        if any(t.matches(canonical, port or default_port) for t in private_targets):
            return _private_target_addresses(canonical, port or default_port, resolve)
    _check_scheme_and_port(parts.scheme, host, port, allow_http_hosts)
    literal = parse_ip_literal(host)
    if literal is not None:
        if is_blocked_ip(literal):
            raise UnsafeURL(f"{host} is not a public address.")
        return [literal]
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise UnsafeURL(f"{host} is not a public host.")
    return _public_addresses(host, port or 443, resolve)


def _parse(url):
    """(parts, host, port) of a URL without spaces, control characters or user info."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("Enter a URL.")
    if _REFUSED_CHARS.search(url):
        raise UnsafeURL("URLs cannot contain spaces, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("Malformed URL.") from None
    if "@" in parts.netloc:
        raise UnsafeURL("URLs with user info (user:password@) are not allowed.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURL("The URL has no host.")
    return parts, host, port


@functools.lru_cache(maxsize=32)
def _http_hosts(hosts: frozenset[str]) -> frozenset[str]:
    # Host names compare as the URL's do: lower case, no trailing dot.
    return frozenset(h.strip().rstrip(".").lower() for h in hosts)


def _check_scheme_and_port(scheme: str, host: str, port, allow_http_hosts) -> None:
    """https everywhere; plain http only to the hosts allowed it; never port 0."""
    allowed = _http_hosts(frozenset(allow_http_hosts)) if allow_http_hosts else frozenset()
    if scheme not in ("http", "https") or (scheme == "http" and host not in allowed):
        raise UnsafeURL("Only https URLs are allowed.")
    if port == 0:
        raise UnsafeURL("Port 0 is not allowed.")


def _public_addresses(host: str, port: int, resolve) -> list[IPAddress]:
    """Every address the name resolves to, each of them public (or UnsafeURL)."""
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"Could not resolve host {host}.") from None
    addresses = []
    for info in infos:
        raw = info[4][0].split("%", 1)[0]
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            raise UnsafeURL(f"{host} resolved to an unusable address.") from None
        if is_blocked_ip(addr):
            raise UnsafeURL(f"{host} resolves to a non-public address ({addr}).")
        addresses.append(addr)
    if not addresses:
        raise UnsafeURL(f"Could not resolve host {host}.")
    return addresses


def _private_target_addresses(host: str, port: int, resolve) -> list[IPAddress]:
    """An allowed private target: any address but a metadata one (nor one hiding it)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        candidates = [literal]
    else:
        try:
            infos = resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise UnsafeURL(f"Could not resolve host {host}.") from None
        candidates = []
        for info in infos:
            try:
                candidates.append(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
            except ValueError:
                raise UnsafeURL(f"{host} resolved to an unusable address.") from None
    for addr in candidates:
        inner = _embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else None
        if addr in METADATA or inner in METADATA or addr.is_multicast or addr.is_unspecified:
            raise UnsafeURL(f"{host} resolves to a refused address ({addr}).")
    if not candidates:
        raise UnsafeURL(f"Could not resolve host {host}.")
    return candidates
