"""A local exchange emulator (Deribit API v2 and Binance USD-M futures) for offline tests of the
real ccxt classes: point them at it through AccountConfig.urls. Binds 127.0.0.1 only."""

from tests.emulator.binance import BinanceEmulator
from tests.emulator.deribit import DeribitEmulator
from tests.emulator.state import ExchangeState, Faults, Market

__all__ = ["BinanceEmulator", "DeribitEmulator", "ExchangeState", "Faults", "Market"]
