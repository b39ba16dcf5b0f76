#!/usr/bin/env python3
"""The queue worker: `python worker.py` polls until SIGTERM; `python worker.py --once` runs one
cycle and exits."""

from notion_queue.entry import worker_main

if __name__ == "__main__":
    raise SystemExit(worker_main())
