"""The SSRF guard: a webhook may only reach public http(s) addresses unless private ones are allowed.

The check runs at send time (DNS answers change) and the request then goes to the very address that
was checked, so a second DNS answer cannot swap in a private one (DNS rebinding). An IPv4 address
hidden in an IPv6 one (mapped, translated, compatible, 6to4, NAT64) is judged as that IPv4 address, and a host
written as a number in any form the C library accepts (`2130706433`, `0x7f.1`, `127.1`) as the
address it stands for.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from coinfleet.errors import WebhookRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: cloud metadata services: refused even when private addresses are allowed
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IPv6
        "fd00:ec2::253",
    )
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A checked URL and the address the request must go to."""

    url: httpx.URL  #: as given
    address: str  #: the checked IP address
    pinned: httpx.URL  #: the URL with its host replaced by that address


#: NAT64 well-known prefix (RFC 6052): the IPv4 address is the last 32 bits
NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: NAT64 local-use prefix (RFC 8215): where the IPv4 address sits depends on the operator's prefix
#: length, so it cannot be told; refused always
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
#: IPv4-compatible IPv6 addresses (deprecated, RFC 4291): the IPv4 address is the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
#: IPv4-translated addresses (stateless IP/ICMP translation, RFC 2765): the IPv4 address is the last 32
#: bits; a translator on the path delivers them to that IPv4 address
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
NUMERIC_HOST = re.compile(r"^[0-9][0-9a-fA-FxX.]*$")


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4 address hidden in an IPv6 one (mapped, translated, compatible, 6to4, NAT64), or the address
    itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address in NAT64 or address in IPV4_TRANSLATED or (address in IPV4_COMPATIBLE and int(address) > 1):
        # (:: and ::1 are IPv6's own)
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or address


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host stands for, in any form inet_aton reads (decimal, octal, hex, short)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    text = host.rstrip(".")
    if not NUMERIC_HOST.match(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a request to this address is refused, or None when it is allowed."""
    if address in NAT64_LOCAL:
        return "a NAT64 local-use address (the IPv4 address behind it cannot be told)"
    plain = _plain(address)
    if plain in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if plain.is_unspecified or plain.is_multicast:
        return "an unspecified or multicast address"
    if allow_private or (plain.is_global and not _site_local(plain)):
        return None
    if plain.is_loopback:
        return "a loopback address"
    if plain.is_link_local:
        return "a link-local address"
    return "a private or reserved address"


def _site_local(address: IPAddress) -> bool:
    """An IPv6 site-local address (fec0::/10): deprecated, yet still routed inside some networks, and
    Python counts it as global."""
    return isinstance(address, ipaddress.IPv6Address) and address.is_site_local


def check_scheme(url: str) -> httpx.URL:
    """The parsed URL; WebhookRefused unless it is http(s) with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise WebhookRefused(f"webhook URL {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookRefused(f"webhook URL {url!r} must be an http:// or https:// URL with a host")
    return parsed


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal or a numeric host resolves to itself)."""
    numeric = numeric_host(host)
    if numeric is not None:
        return [numeric]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookRefused(f"webhook host {host!r} does not resolve ({exc.strerror})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> Target:
    """Check a URL and every address its host resolves to; WebhookRefused names what was wrong."""
    parsed = check_scheme(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await resolve(parsed.host, port)
    if not addresses:
        raise WebhookRefused(f"webhook host {parsed.host!r} has no address")
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise WebhookRefused(
                f"webhook URL {url!r} resolves to {address}, {reason}; set "
                "COINFLEET_WEBHOOK_ALLOW_PRIVATE=true only if such targets are intended"
            )
    chosen = str(addresses[0])
    return Target(url=parsed, address=chosen, pinned=parsed.copy_with(host=chosen))


async def check_setting(url: str | None, *, allow_private: bool) -> None:
    """The send-time check, run when a model's `webhook_url` is set, so a URL every send would refuse is
    refused then, with the reason (DNS may answer otherwise later: sends are checked again)."""
    if url is not None and url.strip():
        await check_url(url.strip(), allow_private=allow_private)
