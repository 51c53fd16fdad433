"""Marker package: makes this folder look like a cosmos-transfer2.5 checkout (tests only)."""
