"""The SSRF guard: a webhook may only reach public http(s) addresses unless private ones are allowed.

The check runs at send time (DNS answers change) and the request then goes to the very address that
was checked, so a second DNS answer cannot swap in a private one (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
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


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4 address hidden in an IPv6 one (mapped, 6to4, NAT64), or the address itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or address


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a request to this address is refused, or None when it is allowed."""
    plain = _plain(address)
    if plain in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if plain.is_unspecified or plain.is_multicast:
        return "an unspecified or multicast address"
    if allow_private or plain.is_global:
        return None
    if plain.is_loopback:
        return "a loopback address"
    if plain.is_link_local:
        return "a link-local address"
    return "a private or reserved address"


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
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
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
