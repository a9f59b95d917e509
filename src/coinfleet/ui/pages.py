"""Every page of the UI; importing this module registers them with NiceGUI."""

from coinfleet.ui import alerts_page, coin_page, import_page, login, model_page, overview

__all__ = ["alerts_page", "coin_page", "import_page", "login", "model_page", "overview"]
