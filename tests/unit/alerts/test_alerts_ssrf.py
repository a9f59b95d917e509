"""The SSRF guard refuses private, loopback, link-local and metadata targets unless allowed."""

from __future__ import annotations

import ipaddress

import pytest

from coinfleet.alerts.ssrf import check_scheme, check_url, numeric_host, refusal
from coinfleet.errors import WebhookRefused

REFUSED = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "127.8.9.10",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::7f00:1",  # NAT64 local-use (RFC 8215), /96 layout
    "64:ff9b:1:7f00:1::",  # NAT64 local-use, /48 layout
    "64:ff9b:1:ffff:ff00:ffff::",  # NAT64 local-use, anything
    "::127.0.0.1",  # IPv4-compatible
    "::7f00:1",
    "::10.0.0.1",
    "::169.254.169.254",
    "::ffff:7f00:1",  # IPv4-mapped, hex
    "::ffff:0:7f00:1",  # IPv4-translated (RFC 2765) of 127.0.0.1
    "::ffff:0:10.0.0.1",  # IPv4-translated of 10.0.0.1
    "fec0::1",  # site-local (deprecated, still routed inside some networks)
]
PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "64:ff9b::808:808",
    "::ffff:8.8.8.8",
    "::ffff:0:808:808",  # IPv4-translated of a public address
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "::1", "fc00::1", "192.168.1.1"])
def test_allow_private_lets_private_and_loopback_through(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "0.0.0.0",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a9fe:a9fe",
        "::ffff:0:a9fe:a9fe",
    ],
)
def test_metadata_and_unspecified_stay_refused_when_private_is_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/webhook",
        "http://127.0.0.1:5678/webhook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[fd00:ec2::254]/",
        "http://localhost:5678/webhook/x",
    ],
)
async def test_check_url_refuses_private_targets(url: str) -> None:
    with pytest.raises(WebhookRefused, match="COINFLEET_WEBHOOK_ALLOW_PRIVATE"):
        await check_url(url, allow_private=False)


async def test_a_name_resolving_to_loopback_is_pinned_to_the_checked_address() -> None:
    target = await check_url("http://localhost:5678/webhook/x?a=1", allow_private=True)
    assert ipaddress.ip_address(target.address).is_loopback
    assert target.pinned.host == target.address
    assert target.pinned.port == 5678 and target.pinned.path == "/webhook/x"
    assert target.url.host == "localhost"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "http:///x"]
)
def test_only_http_and_https_with_a_host(url: str) -> None:
    with pytest.raises(WebhookRefused, match="http"):
        check_scheme(url)


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="does not resolve"):
        await check_url("http://no-such-host.invalid/hook", allow_private=False)


LOOPBACK_SPELLINGS = [
    "http://2130706433/hook",  # decimal
    "http://017700000001/hook",  # octal
    "http://0x7f000001/hook",  # hex
    "http://0x7f.0.0.1/hook",  # hex first part
    "http://0x7f.1/hook",  # hex, short
    "http://127.1/hook",  # short
    "http://127.0.0.1./hook",  # trailing dot
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:7f00:1]/hook",  # IPv4-mapped, hex
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[64:ff9b::127.0.0.1]/hook",  # NAT64
    "http://[64:ff9b:1::7f00:1]/hook",  # NAT64 local-use
    "http://[::ffff:0:127.0.0.1]/hook",  # IPv4-translated
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused(url: str) -> None:
    with pytest.raises(WebhookRefused, match=r"loopback|NAT64"):
        await check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://[::169.254.169.254]/",
    ],
)
async def test_numeric_spellings_of_the_metadata_address_are_refused_even_when_private_is_allowed(
    url: str,
) -> None:
    with pytest.raises(WebhookRefused, match="metadata"):
        await check_url(url, allow_private=True)


def test_octal_with_a_leading_zero_is_not_even_a_url() -> None:
    with pytest.raises(WebhookRefused, match="not a valid URL"):
        check_scheme("http://0177.0.0.1/hook")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("1.de", None),
        ("a.b", None),
    ],
)
def test_numeric_hosts_are_read_as_the_c_library_reads_them(host: str, address: str | None) -> None:
    found = numeric_host(host)
    assert (None if found is None else str(found)) == address
