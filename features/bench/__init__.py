"""Benchmarks of the features package (``kycrisk bench features|online|screening``), apart from product code.

``engine``: the batch feature engine against polars and pandas, and the online engine's latency,
seeding and late orders; ``screening``: watchlist screening speed and recall.
"""
