"""Adapters that map external data sets onto the input contracts (``fdh``: the Fraud Detection Handbook)."""
