"""schemathesis against the real BentoML server: every check, coverage and fuzzing phases, 0 failures.

The server runs as a subprocess on its own copy of the seeded state (generated valid orders change
it); schemathesis reads the OpenAPI document the server publishes (``/docs.json``) and sends the
scoring key with every request. A schema-valid request may still be refused by the state: an
unknown customer or an out-of-order event is a 422 (documented), so 422 counts as an accepted
answer to positive data, beside 2xx, 401 (the auditor endpoint under the scoring key), 404 and 409.

CI runs a bounded budget (``CONTRACT_EXAMPLES``, default 200 examples per operation in the fuzzing
phase, a fixed seed: about 1,700 requests, about 1.5 minutes on 2 cores; 100 gave 1,426 requests in
48 s, 500 gave 2,964 in 438 s on a loaded machine).
The longer run of the README::

    KYCRISK_CONTRACT_EXAMPLES=1000 .venv/bin/python -m pytest tests/serving/test_contract.py -q -s
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serving.test_service import API_KEY, running_server

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONTRACT_EXAMPLES = int(os.environ.get("KYCRISK_CONTRACT_EXAMPLES", "200"))
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "404", "409", "422"]
"""


def test_schemathesis_finds_no_failure(tmp_path, champion, mlflow_store, seeded_state) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with running_server(mlflow_store, seeded_state, tmp_path) as server:
        started = time.perf_counter()
        run = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{server.base_url}/docs.json",
             "--checks", "all", "--phases", "coverage,fuzzing", "--max-examples", str(CONTRACT_EXAMPLES),
             "--seed", "9", "--workers", "2", "--header", f"X-API-Key: {API_KEY}",
             "--continue-on-failure",
             "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=max(1200, 4 * CONTRACT_EXAMPLES),
            cwd=tmp_path,  # schemathesis keeps its example database in ./.schemathesis: not in the repository
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        log = server.log_tail(20_000)
    (tmp_path / "schemathesis.out").write_text(run.stdout)
    summary = run.stdout[run.stdout.find("=== SUMMARY"):]
    failures = run.stdout[run.stdout.find("=== FAILURES"):][:12_000]
    print(f"schemathesis: {elapsed:.0f} s, exit {run.returncode}\n{summary}")
    assert run.returncode == 0, f"{failures}\n{summary}\n{run.stderr[-3000:]}\nserver log:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-5000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts, summary
    generated, passed = int(counts[1]), int(counts[2])
    # the coverage phase alone is about 1,000 cases; the fuzzing phase adds CONTRACT_EXAMPLES per
    # operation and kind (positive, negative)
    assert generated == passed >= 1000 + CONTRACT_EXAMPLES, summary
