#!/usr/bin/env python3
"""`make run`: the whole product on one machine — templates seeded, then the webhook server and
the worker side by side — until Ctrl-C. With no configuration it runs on the embedded default:
a SQLite queue in var/ and an outbox folder of .eml files, no accounts needed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notion_queue.errors import ConfigError  # noqa: E402
from notion_queue.private_files import private_umask  # noqa: E402
from notion_queue.settings import load_settings  # noqa: E402


def main() -> int:
    private_umask()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"run_local: configuration error: {exc}", file=sys.stderr)
        return 2
    seeded = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed_templates.py"), "--quiet"], check=False
    )
    if seeded.returncode != 0:
        return seeded.returncode
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"""
notion-queue is starting: queue={settings.queue_backend} mail={settings.mail_backend}
  webhooks  {base}/webhook/christmas-signup   (health: {base}/healthz)
  outbox    {settings.outbox_dir.resolve() if settings.mail_backend == "outbox" else "-"}
  worker    polls every {settings.poll_interval_seconds:g} s
Try:
  curl -X POST {base}/webhook/christmas-signup -H 'Content-Type: application/json' \\
       -d '{{"email": "sarah@example.com", "first_name": "Sarah"}}'
Ctrl-C stops both.
""",
        flush=True,
    )
    children = [
        subprocess.Popen([sys.executable, str(ROOT / name)], cwd=Path.cwd())
        for name in ("server.py", "worker.py")
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        forward(signal.SIGTERM, None)
        codes = [child.wait(timeout=15) for child in children]
    return max(code for code in codes if code is not None) if any(codes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
