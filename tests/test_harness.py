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
