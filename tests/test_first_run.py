"""What a new user meets before anything runs: the first `make run`, and the documents' links."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "deploy/README.md", "notion_queue/DESIGN.md"]
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_first_make_run_says_what_it_installs_before_pip_starts() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "run"],  # -B: as on a fresh clone, where .venv does not exist yet
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()

    first_pip = next(i for i, line in enumerate(dry_run) if "pip install" in line)
    announced = [line for line in dry_run[:first_pip] if line.startswith("echo")]
    assert any(
        "Installing notion-queue and its dependencies into .venv "
        "(first run only, about a minute)" in line
        for line in announced
    )
    dependencies = next(line for line in dry_run if "-e '.[dev]'" in line)
    assert "--quiet" not in dependencies and " -q" not in dependencies  # pip shows each phase


def relative_links(document: str) -> list[str]:
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        link
        for inline, reference in MARKDOWN_LINK.findall(text)
        if (link := inline or reference)
        and not re.match(r"[a-z][a-z0-9+.-]*:", link)
        and not link.startswith("#")
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_resolves_to_a_file_inside_the_repository(document: str) -> None:
    for link in relative_links(document):
        target = ((ROOT / document).parent / link.split("#", 1)[0]).resolve()
        assert target.is_relative_to(ROOT), f"{document}: {link} points outside the repository"
        assert target.exists(), f"{document}: {link} does not exist"


def test_the_readme_links_to_the_design_document_in_the_package() -> None:
    assert "notion_queue/DESIGN.md" in relative_links("README.md")
