"""Where a redirect may take a signed body: the same host and port, or the same host upgraded to https."""

from __future__ import annotations

import httpx
import pytest

from coinfleet.alerts.transport import origin, redirect_refusal, url_prefix


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("https://n8n.example.com/webhook/a", "https://n8n.example.com/webhook/b"),
        ("https://n8n.example.com/webhook/a", "https://N8N.example.com:443/webhook/b"),
        ("http://n8n.example.com/webhook/a", "https://n8n.example.com/webhook/a"),
        ("http://n8n.example.com:5678/a", "https://n8n.example.com/a"),
        ("http://127.0.0.1:5678/a", "http://127.0.0.1:5678/b"),
    ],
)
def test_allowed_redirects(current: str, target: str) -> None:
    assert redirect_refusal(httpx.URL(current), httpx.URL(target)) is None


@pytest.mark.parametrize(
    ("current", "target", "reason"),
    [
        ("https://n8n.example.com/a", "https://evil.example.net/a", "another host"),
        ("https://n8n.example.com/a", "https://example.com/a", "another host"),
        ("https://n8n.example.com/a", "https://n8n.example.com.evil.net/a", "another host"),
        ("https://n8n.example.com/a", "http://n8n.example.com/a", "https to http"),
        ("http://127.0.0.1:5678/a", "http://127.0.0.1:8080/a", "another port"),
        ("http://127.0.0.1:5678/a", "http://localhost:5678/a", "another host"),
        ("https://n8n.example.com/a", "ftp://n8n.example.com/a", "not http"),
    ],
)
def test_refused_redirects(current: str, target: str, reason: str) -> None:
    refusal = redirect_refusal(httpx.URL(current), httpx.URL(target))
    assert refusal is not None and reason in refusal


def test_receivers_are_told_apart_by_scheme_host_and_port() -> None:
    assert origin("https://N8N.example.com/webhook/a") == ("https", "n8n.example.com", 443)
    assert origin("http://n8n.example.com/x") == ("http", "n8n.example.com", 80)
    assert origin("http://127.0.0.1:5678/x") == ("http", "127.0.0.1", 5678)


def test_the_url_prefix_of_a_receiver_keeps_the_url_as_written() -> None:
    assert url_prefix("http://127.0.0.1:5678/webhook/a?x=1") == "http://127.0.0.1:5678/"
    assert url_prefix("https://n8n.example.com/webhook/a") == "https://n8n.example.com/"
