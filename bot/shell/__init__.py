"""The asyncio shell around the hedger: streams, position watch, REST reconciliation."""
