"""The HTTP side: REST API, live stream, MCP server, metrics and health."""

from coinfleet.api.app import ApiConfig, create_app

__all__ = ["ApiConfig", "create_app"]
