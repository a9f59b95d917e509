"""The receivers one deliverer sends to: per (scheme, host, port), kept-alive connections and a breaker."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from coinfleet.alerts.breaker import Breaker
from coinfleet.alerts.config import DeliveryConfig
from coinfleet.alerts.transport import new_client, origin


@dataclass(frozen=True, kw_only=True, slots=True)
class Receiver:
    """One receiver (scheme, host, port): its kept-alive connections and its circuit breaker."""

    client: httpx.AsyncClient
    breaker: Breaker


class Receivers:
    """Every receiver met so far, shared by all lanes, so one that fails pauses every lane sending to it."""

    def __init__(self, config: DeliveryConfig) -> None:
        self._config = config
        self._found: dict[tuple[str, str, int], Receiver] = {}

    def of(self, url: str) -> Receiver:
        """The receiver of this URL, made on first use."""
        key = origin(url)
        found = self._found.get(key)
        if found is None:
            client = new_client(self._config.timeout_seconds, self._config.max_concurrency)
            found = Receiver(client=client, breaker=Breaker(policy=self._config.policy))
            self._found[key] = found
        return found

    async def aclose(self) -> None:
        for receiver in self._found.values():
            await receiver.client.aclose()
        self._found.clear()
