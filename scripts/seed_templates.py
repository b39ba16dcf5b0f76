#!/usr/bin/env python3
"""Upsert the packaged email templates into the Templates database (Notion, or the SQLite queue
on the embedded default), by Template ID, as page content: a marketer opens one and reads a
document. Re-running changes nothing; a page a marketer edited is kept unless --force."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notion_queue.clock import SystemClock
from notion_queue.errors import NotionQueueError
from notion_queue.private_files import private_umask
from notion_queue.seeding import seed_templates
from notion_queue.settings import load_settings
from notion_queue.wiring import build_store


def main(argv: list[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also overwrite template pages a marketer edited since they were seeded",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        store = build_store(settings, SystemClock())
    except NotionQueueError as exc:
        print(f"seed_templates: {exc}", file=sys.stderr)
        return 2

    def progress(index: int, total: int, template_id: str, result: str) -> None:
        if not args.quiet:
            print(f"[{index:>2}/{total}] {template_id}: {result}", flush=True)

    try:
        counts = seed_templates(store, force=args.force, progress=progress)
    except NotionQueueError as exc:
        print(f"seed_templates: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    where = (
        "Notion Templates database" if settings.queue_backend == "notion" else settings.sqlite_path
    )
    print(
        f"templates in {where}: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['kept']} kept (edited in Notion; --force "
        "overwrites them)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
