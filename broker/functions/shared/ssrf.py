"""Consumer URLs the egress may call: https, a public host, no tricks.

Checked when a consumer is saved and again by the egress before each delivery (which then
connects to one of the addresses vetted here, so DNS cannot change its answer in between).
"""

import ipaddress
import socket
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


class UnsafeURL(ValueError):
    pass


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
    resolve=socket.getaddrinfo,
) -> list[IPAddress]:
    """Raises UnsafeURL unless the URL is safe to call; returns the vetted addresses."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("Enter a URL.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or "\\" in url:
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
    if parts.scheme == "http":
        if host not in allow_http_hosts:
            raise UnsafeURL("Only https URLs are allowed.")
    elif parts.scheme != "https":
        raise UnsafeURL("Only https URLs are allowed.")
    if port == 0:
        raise UnsafeURL("Port 0 is not allowed.")
    literal = parse_ip_literal(host)
    if literal is not None:
        if is_blocked_ip(literal):
            raise UnsafeURL(f"{host} is not a public address.")
        return [literal]
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise UnsafeURL(f"{host} is not a public host.")
    try:
        infos = resolve(host, port or 443, type=socket.SOCK_STREAM)
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
