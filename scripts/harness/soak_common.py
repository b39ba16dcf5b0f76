"""What the three soaks (Notion, embedded, PostgreSQL) share: the verdict's shape, and the
environment their real server and workers start with."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Production (MAIL_BACKEND=resend) wants a public https base URL and signed or rate-limited
# website endpoints; a soak's load comes from one client, so no limit.
PRODUCTION_ENV = {
    "PUBLIC_BASE_URL": "https://funnel.businessx.com",
    "ALLOW_UNSIGNED_WEBHOOKS": "true",
    "UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT": "1000000",
    "UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS": "1000000",
}


@dataclass
class SoakVerdict:
    """A soak's figures (the subclass's fields) and what went wrong; ok when nothing did."""

    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)


def soak_env(workdir: Path, port: int, sequences: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any NOTION_/RESEND_ setting of the machine's, the
    soak's catalog (every step due at once) in testing mode, 1 s polls, JSON logs, and
    `settings` over all that."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        STATE_DIR=str(workdir / "state"),
        SEQUENCES_FILE=str(sequences),
        TESTING_MODE="true",
        PORT=str(port),
        POLL_INTERVAL_SECONDS="1",
        UNSUBSCRIBE_SECRET="soak-unsubscribe-secret",
        LOG_FORMAT="json",
    )
    env.update(settings)
    return env
