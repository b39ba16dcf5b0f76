#!/usr/bin/env python3
"""Create the Email Queue, Templates, Contacts and Workers (the worker's lease) databases, and
optionally Email Analytics, under a Notion page, with the schema notion-queue expects, then
print the lines to paste into .env.

Share the parent page with your integration first (••• → Connections). Re-running changes
nothing that is already right; missing properties, options and views are added."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import httpx
from notion_client import APIResponseError
from notion_client.errors import HTTPResponseError, RequestTimeoutError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notion_queue.clock import SystemClock
from notion_queue.errors import ConfigError, NotionQueueError
from notion_queue.notion_setup import NotionSetup
from notion_queue.private_files import private_umask
from notion_queue.sequences import load_catalog
from notion_queue.settings import NOTION_API_BASE_URL
from notion_queue.store.notion_gateway import NotionGateway, build_client

_ID = re.compile(r"([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})(?:[?#].*)?$")


def page_id_from(text: str) -> str:
    """Accept an id with or without dashes, or the page's URL as copied from Notion."""
    match = _ID.search(text.strip().rstrip("/"))
    if not match:
        raise ValueError(f"{text!r} does not end in a Notion page id")
    return match.group(1).replace("-", "")


SHARE = "open the page in Notion, ••• → Connections → add the integration"


def parent_page_problem(gateway: NotionGateway, parent: str) -> str | None:
    """Read the parent page once before creating anything: Notion answers 401 unauthorized to a
    token it does not know, 403 restricted_resource to an integration without the capability,
    and 404 object_not_found for a page not shared with the integration; each has its own fix.
    Anything else (429, 5xx, network) is left to the setup's own retries."""
    try:
        gateway.client.pages.retrieve(page_id=parent)
    except APIResponseError as exc:
        if exc.status == 401:
            return (
                "Notion refused NOTION_TOKEN (401 unauthorized): copy the integration's secret "
                "again from notion.so/profile/integrations, then share the parent page with the "
                f"integration ({SHARE})"
            )
        if exc.status == 403:
            return (
                "Notion refused the integration (403 restricted_resource): give it the Read, "
                "Update and Insert content capabilities at notion.so/profile/integrations"
            )
        if exc.status == 404:
            return (
                f"Notion cannot see the parent page {parent} (404 object_not_found): share it "
                f"with the integration ({SHARE}), and check the page id or URL"
            )
    except (RequestTimeoutError, HTTPResponseError, httpx.TransportError):
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parent-page", required=True, help="the page id or URL to create under")
    parser.add_argument("--with-analytics", action="store_true", help="also create Email Analytics")
    args = parser.parse_args(argv)
    token = os.environ.get("NOTION_TOKEN", "").strip()
    if not token:
        print("setup_notion: NOTION_TOKEN is not set (the integration's secret)", file=sys.stderr)
        return 2
    try:
        parent = page_id_from(args.parent_page)
    except ValueError as exc:
        print(f"setup_notion: {exc}", file=sys.stderr)
        return 2
    # The Sequence options are the catalog's: SEQUENCES_FILE when set, else the packaged one.
    sequences_file = os.environ.get("SEQUENCES_FILE", "").strip()
    try:
        catalog = load_catalog(Path(sequences_file) if sequences_file else None)
    except ConfigError as exc:
        print(f"setup_notion: {exc}", file=sys.stderr)
        return 2
    base_url = os.environ.get("NOTION_API_BASE_URL", NOTION_API_BASE_URL)
    gateway = NotionGateway(build_client(token, base_url), SystemClock())
    setup = NotionSetup(gateway, progress=lambda message: print(f"… {message}", flush=True))
    try:
        problem = parent_page_problem(gateway, parent)
        if problem:
            print(f"setup_notion: {problem}", file=sys.stderr)
            return 2
        report = setup.run(
            parent, with_analytics=args.with_analytics, sequences=list(catalog.sequences)
        )
    except NotionQueueError as exc:
        print(f"setup_notion: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.client.close()
    print("\n".join(report.changes) if report.changes else "Everything was already in place.")
    for note in report.notes:
        print(f"note: {note}")
    print("\nPaste into your .env (or /etc/notion-queue/env):\n")
    print("QUEUE_BACKEND=notion")
    print("\n".join(report.env_lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
