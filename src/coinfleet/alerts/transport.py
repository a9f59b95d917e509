"""One webhook POST: to the address the SSRF guard checked, redirects followed by hand and only where a
signed body may go, connections kept alive per receiver."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from coinfleet.alerts.outbox import Attempt
from coinfleet.alerts.ssrf import check_url
from coinfleet.errors import WebhookRefused

MAX_REDIRECTS = 3  #: redirects followed by hand, each target checked again
EXCERPT_CHARS = 500  #: response text kept per attempt
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
HOP_TIMEOUT_FACTOR = 2  #: one hop (DNS, connect, send, answer) may take this many timeouts in all
DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectNotFollowed(Exception):
    """A redirect would carry the signed body somewhere it must not go."""


def new_client(timeout_seconds: float, max_connections: int) -> httpx.AsyncClient:
    """The HTTP client of one receiver (one scheme, host and port): keep-alive, no automatic
    redirects and no proxies from the environment (both would bypass the guard)."""
    # One client per receiver: its pooled connections (keyed by the checked IP address) only ever
    # carry requests for that receiver's host name, so a TLS connection opened for one name never
    # carries a request meant for another name on the same address.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


def origin(url: str) -> tuple[str, str, int]:
    """The receiver a URL names: scheme, host and port (connections and breakers are kept per receiver)."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)


def url_prefix(url: str) -> str:
    """The start every URL of the receiver `url` names shares as written: scheme://host[:port]/."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}/"


def redirect_refusal(current: httpx.URL, target: httpx.URL) -> str | None:
    """Why a redirect from `current` to `target` is not followed, or None: the signed body may only go
    to the same host and port, or to the same host over https (an upgrade); never to another host and
    never from https to http."""
    if target.scheme not in DEFAULT_PORTS:
        return f"redirect to {target} not followed: not http(s)"
    if target.host.lower() != current.host.lower():
        return f"redirect to {target} not followed: a signed body never goes to another host"
    if current.scheme == "https" and target.scheme == "http":
        return f"redirect to {target} not followed: a signed body never goes from https to http"
    same_port = (target.port or DEFAULT_PORTS[target.scheme]) == (
        current.port or DEFAULT_PORTS[current.scheme]
    )
    if target.scheme == current.scheme and not same_port:
        return f"redirect to {target} not followed: a signed body never goes to another port"
    return None


async def post_webhook(
    client: httpx.AsyncClient, url: str, body: bytes, request_headers: dict[str, str], *, allow_private: bool
) -> Attempt:
    """POST `body` once, following up to MAX_REDIRECTS allowed redirects; never raises for the network."""
    started = time.perf_counter()
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, excerpt = await _post_once(
                client, current, body, request_headers, allow_private
            )
            if status not in REDIRECT_CODES or not location:
                return _attempt(current, started, status=status, excerpt=excerpt)
            current = _follow(current, location)
        return _attempt(current, started, status=status, error=f"more than {MAX_REDIRECTS} redirects")
    except RedirectNotFollowed as exc:
        return _attempt(current, started, status=status, error=str(exc))
    except WebhookRefused as exc:
        return _attempt(current, started, error=str(exc), refused=True)
    except TimeoutError:
        return _attempt(current, started, error=f"timed out after {client.timeout.read}s")
    except httpx.HTTPError as exc:
        return _attempt(current, started, error=f"{type(exc).__name__}: {exc}")


def _follow(current: str, location: str) -> str:
    """The redirect's target; RedirectNotFollowed when the body must not go there."""
    here = httpx.URL(current)
    try:
        target = here.join(location)
    except httpx.InvalidURL as exc:
        raise RedirectNotFollowed(f"redirect to {location!r} not followed: not a valid URL ({exc})") from None
    reason = redirect_refusal(here, target)
    if reason:
        raise RedirectNotFollowed(reason)
    return str(target)


def _attempt(
    url: str,
    started: float,
    *,
    status: int | None = None,
    excerpt: str | None = None,
    error: str | None = None,
    refused: bool = False,
) -> Attempt:
    latency_ms = (time.perf_counter() - started) * 1000
    if error is None and status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
    return Attempt(
        url=url,
        status_code=status,
        latency_ms=latency_ms,
        error=error[:EXCERPT_CHARS] if error else None,
        excerpt=excerpt,
        refused=refused,
    )


async def _post_once(
    client: httpx.AsyncClient, url: str, body: bytes, request_headers: dict[str, str], allow_private: bool
) -> tuple[int, str | None, str]:
    """One request to the checked address; (status, Location header, response excerpt)."""
    timeout = client.timeout.read or 5.0
    async with asyncio.timeout(timeout * HOP_TIMEOUT_FACTOR):  # httpx times each step, this the whole hop
        target = await check_url(url, allow_private=allow_private)
        extensions: dict[str, Any] = {"sni_hostname": target.url.host} if target.url.scheme == "https" else {}
        pinned_headers = {**request_headers, "Host": target.url.netloc.decode("ascii")}
        async with client.stream(
            "POST", target.pinned, content=body, headers=pinned_headers, extensions=extensions
        ) as response:
            return response.status_code, response.headers.get("location"), await _excerpt(response)


async def _excerpt(response: httpx.Response) -> str:
    """The start of the response text, without reading a huge body."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= EXCERPT_CHARS * 4:
            break
    return data.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
