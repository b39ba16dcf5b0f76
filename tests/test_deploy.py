"""deploy/: the systemd units verify, and they say what deploy/README.md says they do."""

from __future__ import annotations

import re
import shlex
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


ENV_EXAMPLE = ROOT / "deploy" / "env.example"
# Settings no install sets: tests point these at the fake Notion and the fake Resend.
NOT_FOR_PRODUCTION = {"NOTION_API_BASE_URL", "RESEND_API_URL"}
# Settings other changes add (issue 10 §2), listed in env.example already.
PRODUCTION_SETTINGS_TO_COME = {
    "ALLOW_UNSIGNED_WEBHOOKS",
    "UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT",
    "UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS",
    "FORWARDED_ALLOW_IPS",
}
SETTING_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")


def described_settings(text: str) -> dict[str, str]:
    """Each setting env.example names (set or commented out), with the comment right above it;
    settings on consecutive lines share their group's comment."""
    found: dict[str, str] = {}
    comment, description = "", ""
    for line in text.splitlines():
        match = SETTING_LINE.match(line)
        if match:
            description = comment or description
            comment = ""
            found.setdefault(match.group(1), description)
        elif not line.strip() or line.startswith("# ----"):
            comment, description = "", ""
        elif line.startswith("#"):
            comment = f"{comment} {line.lstrip('# ')}".strip()
    return found


def test_env_example_describes_every_setting_a_production_install_needs() -> None:
    from notion_queue.settings import Settings

    needed = {name.upper() for name in Settings.model_fields} - NOT_FOR_PRODUCTION
    needed |= PRODUCTION_SETTINGS_TO_COME | {"RESEND_WEBHOOK_SECRET", "WEBHOOK_SECRET"}
    settings = described_settings(ENV_EXAMPLE.read_text())
    assert sorted(needed - set(settings)) == []
    undescribed = [name for name in needed if len(settings[name]) < 20]
    assert undescribed == []


def test_env_example_ships_no_empty_value_and_no_usable_secret() -> None:
    from pydantic import SecretStr

    from notion_queue.settings import Settings

    secrets = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", ())
    }
    assert {"WEBHOOK_SECRET", "UNSUBSCRIBE_SECRET", "RESEND_WEBHOOK_SECRET"} <= secrets
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = SETTING_LINE.match(line)
        if match and not line.startswith("#"):
            name, value = match.groups()
            assert value.strip(), f"{name}= ships empty"
            if name in secrets:
                assert "replace_me" in value, f"{name} ships a value production would accept"


def sourced_by_sh(env_file: Path) -> dict[str, str]:
    result = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; exec env -0', str(env_file)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


ENVIRONMENT_D_GENERATOR = Path(
    "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"
)


def read_by_systemd(env_file: Path, home: Path) -> dict[str, str]:
    """The file as systemd's environment-file parser reads it (the one EnvironmentFile= uses),
    through the environment.d generator, which prints what it parsed."""
    (home / "environment.d").mkdir()
    (home / "environment.d" / "50-notion-queue.conf").write_text(env_file.read_text())
    result = subprocess.run(
        [str(ENVIRONMENT_D_GENERATOR)],
        env={"XDG_CONFIG_HOME": str(home), "HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {
        name: shlex.split(value)[0] if value else ""
        for name, _, value in (line.partition("=") for line in result.stdout.splitlines())
    }


def test_env_example_can_be_sourced_by_sh() -> None:
    values = sourced_by_sh(ENV_EXAMPLE)
    assert values["EMAIL_FROM"] == "BusinessX <hello@businessx.com>"
    assert values["PUBLIC_BASE_URL"] == "https://funnel.businessx.com"


@pytest.mark.skipif(
    not ENVIRONMENT_D_GENERATOR.exists(),
    reason="needs Debian's systemd package (.ci/run installs it: apt-get install systemd)",
)
def test_systemd_and_sh_read_env_example_alike(tmp_path: Path) -> None:
    by_sh = sourced_by_sh(ENV_EXAMPLE)
    by_systemd = read_by_systemd(ENV_EXAMPLE, tmp_path)
    names = {
        m.group(1)
        for m in map(SETTING_LINE.match, ENV_EXAMPLE.read_text().splitlines())
        if m and not m.group(0).startswith("#")
    }
    assert len(names) >= 10
    assert {n: by_systemd.get(n) for n in names} == {n: by_sh.get(n) for n in names}
