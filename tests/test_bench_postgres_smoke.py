"""`make bench ARGS=--postgres` runs end to end with tiny numbers (no timing assertions: the
figures are the benchmark's business)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.harness.bench import main


def test_the_postgres_bench_sends_with_several_workers_and_drains_intake(tmp_path: Path) -> None:
    out = tmp_path / "results"

    code = main(
        ["--postgres", "--rows=6", "--workers=1,2", "--resend-rps=20", "--events=3", f"--out={out}"]
    )

    assert code == 0
    results = json.loads((out / "results-postgres.json").read_text())
    assert [(s["workers"], s["deliveries"]) for s in results["sending"]] == [(1, 6), (2, 6)]
    assert results["intake"]["events"] == 3 and results["intake"]["rows"] == 15
