"""Where `parse_since` used to live; statistics are read through `coinfleet.service.stats`."""

from coinfleet.service.stats import parse_since

__all__ = ["parse_since"]
