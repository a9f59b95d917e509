"""The SSRF guard refuses private, loopback, link-local and metadata targets unless allowed."""

from __future__ import annotations

import ipaddress

import pytest

from coinfleet.alerts.ssrf import check_scheme, check_url, refusal
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
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "::1", "fc00::1", "192.168.1.1"])
def test_allow_private_lets_private_and_loopback_through(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0"])
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
