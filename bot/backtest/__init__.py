"""Backtests: the live hedger on the simulated exchange and a virtual clock."""
