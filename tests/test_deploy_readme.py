"""deploy/README.md's commands work exactly as written with the shipped deploy/env.example.

The test plays the operator: it copies env.example where /etc/notion-queue/env would be, edits
it as `sudoedit` would (a token, a webhook secret, the database ids setup_notion.py prints), and
runs every documented command that reads the file, `sudo -u notion-queue` aside. Notion is the
fake, served on 127.0.0.1; STATE_DIR points into the test's folder.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from notion_queue.testing.fake_notion import FakeNotion

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "deploy" / "README.md"
ENV_FILE = "/etc/notion-queue/env"
AS_SERVICE_USER = ["sudo", "-u", "notion-queue", "sh", "-c"]
NOTION_TOKEN = "secret_deploy_readme_token"


def readme_commands() -> list[list[str]]:
    """Every command of the README's ```sh blocks, as the shell would split it."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def env_file_commands() -> list[str]:
    """The scripts the README runs as the service user with the environment file."""
    return [words[5] for words in readme_commands() if words[:5] == AS_SERVICE_USER]


def test_every_documented_program_run_reads_the_environment_file() -> None:
    runs = [words for words in readme_commands() if any(".venv/bin/" in w for w in words)]
    assert len(runs) >= 4
    for words in runs:
        assert words[:5] == AS_SERVICE_USER and len(words) == 6, shlex.join(words)
        assert words[5].startswith(f"set -a; . {ENV_FILE}; exec "), words[5]
    assert "xargs" not in README.read_text()


def run_as_documented(script: str, env_file: Path, parent_page: str) -> str:
    script = script.replace(ENV_FILE, shlex.quote(str(env_file)))
    script = script.replace("<page id or URL>", parent_page)
    result = subprocess.run(
        ["sh", "-c", script],
        cwd=ROOT,  # the README's `cd /opt/notion-queue`
        # Nothing of the test's own environment but PATH, and PYTHONPATH: the shared venv's
        # editable install may point at another checkout than this one.
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(env_file.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_documented_commands_work_with_the_shipped_env_example(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text((ROOT / "deploy" / "env.example").read_text())
    fake = FakeNotion(token=NOTION_TOKEN)
    parent = fake.create_parent_page("Email funnel")
    scripts = env_file_commands()
    assert [s.split("exec ", 1)[1].split()[1] for s in scripts] == [
        "scripts/setup_notion.py",
        "scripts/seed_templates.py",
        "templates",
        "status",
    ]

    with fake.serve() as notion_url, env_file.open("a") as edit:
        # sudoedit: what the operator fills in, and where this test's Notion and state live.
        edit.write(
            f"\nNOTION_TOKEN={NOTION_TOKEN}\nWEBHOOK_SECRET=0123456789abcdef0123456789abcdef\n"
            f"NOTION_API_BASE_URL={notion_url}\nSTATE_DIR={tmp_path / 'state'}\n"
        )
        edit.flush()
        outputs = []
        for script in scripts:
            outputs.append(run_as_documented(script, env_file, parent))
            if "setup_notion.py" in script:
                pasted = re.findall(r"^NOTION_\w+_DB_ID=\S+$", outputs[-1], re.M)
                assert len(pasted) == 4, outputs[-1]
                edit.write("\n".join(pasted) + "\n")
                edit.flush()

    seeded, checked, status = outputs[1:]
    assert re.search(r"templates in Notion Templates database: [1-9]\d* created", seeded), seeded
    assert re.search(r"(\d+) of \1 templates render", checked), checked
    assert "The queue is empty." in status
