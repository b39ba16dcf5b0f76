"""The small JSON files the processes leave each other in STATE_DIR (the worker's and the
drainer's status): written whole, by rename, so that a reader sees the old file or the new one,
never half of one; read as a JSON object, or None when there is none yet or it is not one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notion_queue.private_files import private_file


def replace_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to a 0600 file beside `path`, then rename it over `path`."""
    tmp = path.with_suffix(".tmp")
    private_file(tmp).write_text(json.dumps(data))
    tmp.replace(path)


def read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
