"""The benchmark and soak harness lives in the checkout (scripts/harness/), not in the product
package: the package ships only the fakes, and `make bench` / `make soak` run from any folder."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from scripts.harness.processes import REPO_ROOT, wait_until

PACKAGE = REPO_ROOT / "notion_queue"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_package_ships_the_fakes_but_not_the_bench_and_soak_tools() -> None:
    shipped = sorted(p.name for p in (PACKAGE / "testing").glob("*.py"))

    assert shipped == ["__init__.py", "_http.py", "fake_notion.py", "fake_resend.py"]


def test_nothing_in_the_package_imports_the_harness() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in {"scripts", "harness"}
        )
        for path in PACKAGE.rglob("*.py")
    }

    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("script", ["bench.py", "soak.py"])
def test_make_bench_and_make_soak_entry_points_run_from_any_folder(
    script: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_waiting_treats_a_server_not_yet_listening_as_not_yet() -> None:
    answers = iter([httpx.ConnectError("refused"), False, True])

    def check() -> bool:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until(check, timeout=5, step=0)

    assert next(answers, "all used") == "all used"


def test_waiting_in_vain_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the server to start"):
        wait_until(lambda: False, timeout=0, what="the server to start")


def test_the_steal_meter_reports_the_share_of_cpu_time_the_host_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.harness import cpu_steal

    stat = tmp_path / "stat"
    monkeypatch.setattr(cpu_steal, "PROC_STAT", stat)
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\n")
    meter = cpu_steal.StealMeter()
    stat.write_text("cpu  160 0 70 900 10 0 0 110 0 0\ncpu0 80 0 35 450 5 0 0 55 0 0\n")

    assert meter.percent() == 28.0  # 70 stolen of 250 jiffies

    stat.write_text("not linux\n")
    assert cpu_steal.cpu_times() == (0, 0)
