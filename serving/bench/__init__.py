"""Benchmarks of the serving package (``kycrisk bench serve``), apart from product code.

``serve``: the scoring path in-process, behind the bare reference app and behind BentoML;
``load``: the order stream and the closed-loop load generator it runs in its own process;
``bare_app``: the bare Starlette reference app over the same Scorer.
"""
