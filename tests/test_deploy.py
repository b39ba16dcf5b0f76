"""deploy/: the systemd units verify, and they say what deploy/README.md says they do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ["notion-queue-server.service", "notion-queue-worker.service"]
NEEDS_SYSTEMD_ANALYZE = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze (.ci/run installs it: apt-get install systemd)",
)


@pytest.mark.parametrize("unit", UNITS)
def test_unit_has_the_promised_settings(unit: str) -> None:
    text = (ROOT / "deploy" / unit).read_text()
    for line in (
        "Restart=on-failure",
        "User=notion-queue",
        "StateDirectory=notion-queue",
        "EnvironmentFile=/etc/notion-queue/env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ):
        assert line in text, line
    assert unit in (ROOT / "deploy" / "README.md").read_text()


@NEEDS_SYSTEMD_ANALYZE
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point the units at this checkout.
    for unit in UNITS:
        text = (ROOT / "deploy" / unit).read_text()
        text = text.replace("/opt/notion-queue/.venv/bin/python", sys.executable)
        text = text.replace("/opt/notion-queue", str(ROOT))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[str(tmp_path / u) for u in UNITS]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


MAX_EXPOSURE = 2.0


@NEEDS_SYSTEMD_ANALYZE
@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_score_is_at_most_two(unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(ROOT / "deploy" / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    failing = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert float(match.group(1)) <= MAX_EXPOSURE, "\n".join(failing)


def test_env_example_names_every_required_variable() -> None:
    text = (ROOT / "deploy" / "env.example").read_text()
    for name in (
        "QUEUE_BACKEND",
        "NOTION_TOKEN",
        "NOTION_EMAIL_QUEUE_DB_ID",
        "NOTION_TEMPLATES_DB_ID",
        "NOTION_CONTACTS_DB_ID",
        "RESEND_API_KEY",
        "EMAIL_FROM",
        "UNSUBSCRIBE_SECRET",
        "PUBLIC_BASE_URL",
    ):
        assert f"{name}=" in text, name
