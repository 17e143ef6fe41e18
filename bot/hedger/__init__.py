"""The synchronous hedging core: one Hedger per daemon or backtest, on the clock it is given."""
