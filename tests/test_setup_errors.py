"""scripts/setup_notion.py when Notion refuses: the first-time user learns what to do in Notion."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from notion_queue.testing.fake_notion import FakeNotion
from tests.conftest import NOTION_TOKEN

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup_notion.py"
SHARE_HINT = "••• → Connections"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_notion_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Run = Callable[[str, str], tuple[int, str, str]]


@pytest.fixture
def run_setup(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Runs the script's main() against a fake Notion served on loopback."""

    def run(token: str, parent: str | None = None) -> tuple[int, str, str]:
        fake = FakeNotion(token=NOTION_TOKEN)
        shared = fake.create_parent_page("Email funnel")
        monkeypatch.setenv("NOTION_TOKEN", token)
        with fake.serve() as url:
            monkeypatch.setenv("NOTION_API_BASE_URL", url)
            code = load_script().main(["--parent-page", parent or shared])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run  # type: ignore[return-value]


def test_a_bad_token_says_to_check_the_secret_and_share_the_parent_page(run_setup: Run) -> None:
    code, out, err = run_setup("ntn_not_the_right_secret_000")

    assert code == 2
    assert "Notion refused NOTION_TOKEN (401 unauthorized)" in err
    assert "share the parent page with the integration" in err and SHARE_HINT in err
    assert "databases are shared" not in err
    assert "ntn_not_the_right_secret_000" not in out + err
    assert "Paste into your .env" not in out


def test_a_parent_page_not_shared_with_the_integration_says_how_to_share_it(
    run_setup: Run,
) -> None:
    unshared = uuid.uuid4().hex

    code, out, err = run_setup(NOTION_TOKEN, unshared)

    assert code == 2
    assert f"Notion cannot see the parent page {unshared} (404 object_not_found)" in err
    assert "share it with the integration" in err and SHARE_HINT in err
    assert "databases are shared" not in err
    assert "created" not in out
