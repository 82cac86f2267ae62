"""Benchmarks of the training package, apart from product code.

``train``: a full fraud training run against plain ``lightgbm.train`` (``kycrisk bench train``);
``explain``: TreeSHAP latency against model size and quality (``kycrisk bench explain``);
``fdh``: the Fraud Detection Handbook's protocol end to end beside its published rows, on the
folds and metrics of ``fdh_protocol`` (``kycrisk benchmark fdh``).
"""
