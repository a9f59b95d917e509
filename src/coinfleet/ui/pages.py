"""Every page of the UI; importing this module registers them with NiceGUI."""

from coinfleet.ui import overview

__all__ = ["overview"]
