"""coinfleet: real-time prediction server for pump.fun coins, one isolated lane per model."""

__version__ = "0.1.0"
