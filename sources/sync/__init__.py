"""Syncing the inventory from its sources: the connector interface, the engine, the runs."""
