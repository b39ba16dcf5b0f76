#!/usr/bin/env python3
"""The webhook server: `python server.py` (configuration from the environment or .env)."""

from notion_queue.entry import server_main

if __name__ == "__main__":
    raise SystemExit(server_main())
