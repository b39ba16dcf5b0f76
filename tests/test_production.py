"""Production (MAIL_BACKEND=resend) refuses unsafe settings; development stays open and easy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue import entry
from notion_queue.clock import FakeClock
from notion_queue.errors import ConfigError
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.models import Status
from notion_queue.production import production_problems
from notion_queue.settings import Settings, load_settings
from notion_queue.store.base import QueueStore
from notion_queue.web.app import create_app
from notion_queue.web.rate_limit import RateLimiter
from tests.conftest import new_row
from tests.test_compliance import resend_event

ROOT = Path(__file__).resolve().parent.parent
SECRET_SETTINGS = (
    "NOTION_TOKEN",
    "RESEND_API_KEY",
    "WEBHOOK_SECRET",
    "CALCOM_WEBHOOK_SECRET",
    "CALENDLY_WEBHOOK_SIGNING_KEY",
    "RESEND_WEBHOOK_SECRET",
    "UNSUBSCRIBE_SECRET",
)


def production(**overrides: Any) -> Settings:
    """Settings a production install could really run with; each test spoils one thing."""
    values: dict[str, Any] = {
        "mail_backend": "resend",
        "resend_api_key": "re_live_key",
        "public_base_url": "https://funnel.businessx.com",
        "webhook_secret": "website-hmac-secret",
    }
    values.update(overrides)
    return Settings(**values)


def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the shell or a .env file."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("NOTION_", "RESEND_", "MAIL_", "QUEUE_", "PUBLIC_", "UNSIGNED_")):
            monkeypatch.delenv(name)
    for name in (*SECRET_SETTINGS, "ALLOW_UNSIGNED_WEBHOOKS", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "queue.sqlite3"))
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))


# Settings: empty means unset


@pytest.mark.parametrize("name", SECRET_SETTINGS)
@pytest.mark.parametrize("blank", ["", "   "])
def test_a_secret_given_empty_is_unset(
    name: str, blank: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_environment(monkeypatch, tmp_path)
    monkeypatch.setenv(name, blank)

    settings = load_settings()

    assert getattr(settings, name.lower()) is None
    assert settings.secrets() == []


def test_an_empty_secret_passed_in_code_is_unset_too() -> None:
    settings = Settings(webhook_secret=SecretStr(""), calcom_webhook_secret="")  # type: ignore[arg-type]

    assert settings.webhook_secret is None and settings.calcom_webhook_secret is None
    assert settings.secrets_given_empty == frozenset({"WEBHOOK_SECRET", "CALCOM_WEBHOOK_SECRET"})


# production_problems


def test_sound_production_settings_have_no_problems() -> None:
    assert production_problems(production()) == []


def test_development_is_never_refused() -> None:
    settings = Settings(webhook_secret="", public_base_url="http://localhost:8000")  # type: ignore[arg-type]

    assert production_problems(settings) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://funnel.businessx.com",
        "ftp://funnel.businessx.com",
        "funnel.businessx.com",
        "https://",
    ],
)
def test_production_refuses_a_public_base_url_that_is_not_https(url: str) -> None:
    [problem] = production_problems(production(public_base_url=url))

    assert problem.startswith("PUBLIC_BASE_URL ")
    assert "https://" in problem  # the fix


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost",
        "https://LocalHost:8443/",
        "https://localhost./",
        "https://funnel.localhost",
        "https://127.0.0.1",
        "https://127.8.9.10:8000",
        "https://127.1",
        "https://2130706433",
        "https://[::1]:8000",
        "https://[::ffff:127.0.0.1]",
        "https://0.0.0.0",
    ],
)
def test_production_refuses_a_public_base_url_on_this_machine(url: str) -> None:
    [problem] = production_problems(production(public_base_url=url))

    assert problem.startswith("PUBLIC_BASE_URL ")
    assert "recipients" in problem


def test_production_accepts_a_public_address_that_only_looks_local() -> None:
    for url in ("https://localhost.businessx.com", "https://127.businessx.com", "https://8.8.8.8"):
        assert production_problems(production(public_base_url=url)) == []


@pytest.mark.parametrize(
    "name",
    [
        "NOTION_TOKEN",
        "WEBHOOK_SECRET",
        "CALCOM_WEBHOOK_SECRET",
        "CALENDLY_WEBHOOK_SIGNING_KEY",
        "RESEND_WEBHOOK_SECRET",
        "UNSUBSCRIBE_SECRET",
    ],
)
def test_production_refuses_a_secret_set_to_the_empty_string(name: str) -> None:
    settings = production(**{name.lower(): "", "allow_unsigned_webhooks": True})

    [problem] = production_problems(settings)

    assert problem.startswith(f"{name} is set but empty")
    assert "remove" in problem


def test_production_refuses_unsigned_website_endpoints_unless_allowed() -> None:
    [problem] = production_problems(production(webhook_secret=None))
    allowed = production_problems(production(webhook_secret=None, allow_unsigned_webhooks=True))

    assert problem.startswith("WEBHOOK_SECRET is not set")
    assert "ALLOW_UNSIGNED_WEBHOOKS=true" in problem
    assert allowed == []


def test_problems_never_show_a_secret() -> None:
    settings = production(
        public_base_url="http://funnel.businessx.com", unsubscribe_secret="", webhook_secret=None
    )

    problems = production_problems(settings)

    assert len(problems) == 3
    assert not any("re_live_key" in p for p in problems)


# Start-up: the server, the worker and the CLI refuse


def production_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("MAIL_BACKEND", "resend")
    monkeypatch.setenv("RESEND_API_KEY", "re_live_key")
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://localhost:8000")
    monkeypatch.setenv("WEBHOOK_SECRET", "website-hmac-secret")


@pytest.mark.parametrize("main", [entry.server_main, entry.worker_main])
def test_server_and_worker_refuse_to_start_on_unsafe_production_settings(
    main: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production_environment(monkeypatch, tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        main([])

    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "PUBLIC_BASE_URL" in line and "re_live_key" not in line
    assert not (tmp_path / "state").exists()  # refused before touching anything


def test_the_worker_refuses_in_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        MAIL_BACKEND="resend",
        RESEND_API_KEY="re_x",
        PUBLIC_BASE_URL="http://localhost:8000",
        STATE_DIR=str(tmp_path / "state"),
        SQLITE_PATH=str(tmp_path / "queue.sqlite3"),
    )
    env.pop("WEBHOOK_SECRET", None)

    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "PUBLIC_BASE_URL" in line
    assert "re_x" not in line


def test_the_server_passes_the_forwarded_headers_settings_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    clean_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.7")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)

    assert entry.server_main([]) == 0

    [kwargs] = calls
    assert kwargs["proxy_headers"] is True
    assert kwargs["forwarded_allow_ips"] == "10.0.0.7"


def test_the_forwarded_headers_default_trusts_only_a_proxy_on_this_machine() -> None:
    assert Settings().forwarded_allow_ips == "127.0.0.1,::1"


# Endpoints: off without their secret in production


def app_for(
    settings: Settings, journal: Journal, drainer: Drainer | None, clock: FakeClock
) -> TestClient:
    return TestClient(create_app(settings, journal=journal, drainer=drainer, clock=clock))


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/webhook/calcom-booking", "CALCOM_WEBHOOK_SECRET"),
        ("/webhook/calendly", "CALENDLY_WEBHOOK_SIGNING_KEY"),
        ("/webhook/resend", "RESEND_WEBHOOK_SECRET"),
    ],
)
def test_a_provider_endpoint_without_its_secret_is_off_in_production(
    path: str, setting: str, tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    client = app_for(production(), journal, None, clock)

    response = client.post(path, json={"anything": 1})

    assert response.status_code == 404
    assert setting in response.json()["error"]
    assert journal.backlog() == 0
    journal.close()


def test_an_unsigned_complaint_in_production_cancels_nothing(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    row = store.add_row(new_row())
    client = app_for(production(), journal, drainer, clock)

    complaint = resend_event("email.complained")
    response = client.post(
        "/webhook/resend", content=complaint, headers={"Content-Type": "application/json"}
    )
    drainer.drain_once()

    assert response.status_code == 404
    assert store.get_row(row.id).status is Status.QUEUED
    assert store.unsubscribed_emails() == set()


def test_provider_endpoints_stay_open_in_development(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    client = app_for(Settings(), journal, None, clock)

    response = client.post(
        "/webhook/resend",
        content=resend_event("email.delivered"),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 202
    journal.close()


def test_a_provider_endpoint_with_its_secret_is_on_in_production(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    client = app_for(production(calcom_webhook_secret="calcom-secret"), journal, None, clock)

    response = client.post("/webhook/calcom-booking", json={"triggerEvent": "PING"})

    assert response.status_code == 401  # on: it checks the signature
    journal.close()


# Unsigned website endpoints: rate limited in production

SIGNUP = "/webhook/christmas-signup"


def unsigned_production(**overrides: Any) -> Settings:
    return production(webhook_secret=None, allow_unsigned_webhooks=True, **overrides)


def test_unsigned_posts_from_one_client_are_limited_per_minute(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    settings = unsigned_production(unsigned_requests_per_minute_per_client=2)
    client = app_for(settings, journal, None, clock)
    other_client = TestClient(client.app, client=("203.0.113.9", 5000))

    def signup(n: int, via: TestClient = client) -> Any:
        return via.post(SIGNUP, json={"email": f"lead{n}@example.com"})

    answers = [signup(n).status_code for n in range(3)]
    limited = signup(3)
    from_elsewhere = signup(4, other_client)
    clock.advance(30)  # one request's worth of the minute
    after_wait = signup(5)

    assert answers == [202, 202, 429]
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"
    assert "UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT" in limited.json()["error"]
    assert from_elsewhere.status_code == 202
    assert after_wait.status_code == 202
    assert journal.backlog() == 4
    journal.close()


def test_unsigned_posts_for_one_address_are_limited_per_hour(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    settings = unsigned_production(unsigned_requests_per_hour_per_address=2)
    client = app_for(settings, journal, None, clock)

    def signup(email: str, name: str) -> Any:
        return client.post(SIGNUP, json={"email": email, "first_name": name})

    first = [signup("victim@example.com", name).status_code for name in ("A", "B")]
    again = signup("Victim@Example.com", "C")
    tagged = signup("victim+bomb@example.com", "D")
    someone_else = signup("lead@example.com", "E")
    clock.advance(minutes=30)
    after_wait = signup("victim@example.com", "F")

    assert first == [202, 202]
    assert again.status_code == tagged.status_code == 429
    assert again.headers["Retry-After"] == "1800"
    assert "UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS" in again.json()["error"]
    assert "victim" not in again.json()["error"]
    assert someone_else.status_code == 202
    assert after_wait.status_code == 202
    journal.close()


def test_an_invalid_body_does_not_use_up_an_address_allowance(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    client = app_for(
        unsigned_production(unsigned_requests_per_hour_per_address=1), journal, None, clock
    )

    bad = client.post(SIGNUP, json={"email": "not an address"})
    good = client.post(SIGNUP, json={"email": "lead@example.com"})

    assert bad.status_code == 422 and good.status_code == 202
    journal.close()


def test_signed_website_posts_are_not_rate_limited(tmp_path: Path, clock: FakeClock) -> None:
    import hashlib
    import hmac
    import json

    journal = Journal(tmp_path / "intake.sqlite3")
    settings = production(
        unsigned_requests_per_minute_per_client=1, unsigned_requests_per_hour_per_address=1
    )
    client = app_for(settings, journal, None, clock)

    def signed(name: str) -> int:
        body = json.dumps({"email": "lead@example.com", "first_name": name}).encode()
        mac = hmac.new(b"website-hmac-secret", body, hashlib.sha256).hexdigest()
        headers = {"X-Webhook-Signature": f"sha256={mac}", "Content-Type": "application/json"}
        return client.post(SIGNUP, content=body, headers=headers).status_code

    assert [signed(name) for name in "ABC"] == [202, 202, 202]
    journal.close()


def test_development_does_not_rate_limit_the_quick_start(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    settings = Settings(
        unsigned_requests_per_minute_per_client=1, unsigned_requests_per_hour_per_address=1
    )
    client = app_for(settings, journal, None, clock)

    answers = {
        client.post(SIGNUP, json={"email": "sarah@example.com", "first_name": n}).status_code
        for n in "ABC"
    }

    assert answers == {202}
    journal.close()


# Start-up log: how each endpoint is protected


def protection_lines(settings: Settings, tmp_path: Path, clock: FakeClock) -> dict[str, Any]:
    journal = Journal(tmp_path / "intake.sqlite3")
    with capture_logs() as logs, app_for(settings, journal, None, clock):
        pass
    journal.close()
    return {
        e["endpoint"]: (e["protection"], e["setting"])
        for e in logs
        if e["event"] == "endpoint_protection"
    }


def test_the_server_logs_how_each_endpoint_is_protected_in_production(
    tmp_path: Path, clock: FakeClock
) -> None:
    lines = protection_lines(
        production(calendly_webhook_signing_key="calendly-key"), tmp_path, clock
    )

    assert lines == {
        "/webhook/christmas-signup": ("signed", "WEBHOOK_SECRET"),
        "/webhook/christmas-assessment": ("signed", "WEBHOOK_SECRET"),
        "/webhook/calendly-noshow": ("signed", "WEBHOOK_SECRET"),
        "/webhook/postcall-maybe": ("signed", "WEBHOOK_SECRET"),
        "/webhook/onboarding-start": ("signed", "WEBHOOK_SECRET"),
        "/webhook/calcom-booking": ("off", "CALCOM_WEBHOOK_SECRET"),
        "/webhook/calendly": ("signed", "CALENDLY_WEBHOOK_SIGNING_KEY"),
        "/webhook/resend": ("off", "RESEND_WEBHOOK_SECRET"),
    }


def test_the_server_logs_unsigned_website_endpoints_as_rate_limited(
    tmp_path: Path, clock: FakeClock
) -> None:
    lines = protection_lines(unsigned_production(), tmp_path, clock)

    assert lines["/webhook/christmas-signup"] == ("unsigned_rate_limited", "WEBHOOK_SECRET")


def test_the_server_logs_development_endpoints_as_unsigned(
    tmp_path: Path, clock: FakeClock
) -> None:
    lines = protection_lines(Settings(resend_webhook_secret="whsec_x"), tmp_path, clock)

    assert lines["/webhook/christmas-signup"] == ("unsigned", "WEBHOOK_SECRET")
    assert lines["/webhook/calcom-booking"] == ("unsigned", "CALCOM_WEBHOOK_SECRET")
    assert lines["/webhook/resend"] == ("signed", "RESEND_WEBHOOK_SECRET")


# The limiter itself


def test_a_limiter_refills_at_its_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(per=60, limit=3, clock=clock)

    waits = [limiter.wait_for("a") for _ in range(4)]
    clock.advance(19)
    still = limiter.wait_for("a")
    clock.advance(1)
    refilled = limiter.wait_for("a")

    assert waits == [0, 0, 0, 20]
    assert still == 1 and refilled == 0


def test_a_limiter_keeps_bounded_memory_when_keys_rotate(clock: FakeClock) -> None:
    limiter = RateLimiter(per=3600, limit=5, clock=clock, max_keys=1000)

    for n in range(20_000):
        limiter.wait_for(f"attacker{n}@example.com")
        clock.advance(0.01)

    assert len(limiter) <= 1000


def test_a_limiter_forgets_keys_whose_allowance_is_whole_again(clock: FakeClock) -> None:
    limiter = RateLimiter(per=60, limit=3, clock=clock)
    for n in range(100):
        limiter.wait_for(f"10.0.0.{n}")

    clock.advance(61)
    limiter.wait_for("10.0.1.1")

    assert len(limiter) == 1


def test_an_ipv6_client_is_limited_by_its_whole_slash_64(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    app = app_for(
        unsigned_production(unsigned_requests_per_minute_per_client=1), journal, None, clock
    ).app
    first = TestClient(app, client=("2001:db8:1:2::1", 5000))
    rotated = TestClient(app, client=("2001:db8:1:2:ffff::9", 5000))
    next_block = TestClient(app, client=("2001:db8:1:3::1", 5000))

    answers = [
        c.post(SIGNUP, json={"email": f"lead{n}@example.com"}).status_code
        for n, c in enumerate((first, rotated, next_block))
    ]

    assert answers == [202, 429, 202]
    journal.close()


def test_production_names_an_empty_resend_api_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("RESEND_API_KEY", "")

    with pytest.raises(ConfigError, match="RESEND_API_KEY"):
        load_settings()
