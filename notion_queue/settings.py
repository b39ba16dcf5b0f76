"""Configuration from the environment (and `.env`), with the names of DESIGN.md.

`Settings` is built once in each entry point's `main()` and passed down; tests construct it
directly with keyword arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from notion_queue.errors import ConfigError
from notion_queue.timezones import zone_named

NOTION_API_BASE_URL = "https://api.notion.com"
SECRET_FIELDS = (
    "notion_token",
    "resend_api_key",
    "webhook_secret",
    "calcom_webhook_secret",
    "calendly_webhook_signing_key",
    "resend_webhook_secret",
    "unsubscribe_secret",
    "database_url",
    "admin_token",
)


# A database added since the first release: an existing setup gets it by re-running the script.
_HOW_TO_GET = {
    "NOTION_WORKERS_DB_ID": (
        "; re-run scripts/setup_notion.py, which creates the Workers database (the worker's "
        "lease) and prints the line to add"
    ),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    queue_backend: Literal["sqlite", "notion", "postgres"] = "sqlite"
    sqlite_path: Path = Path("var/queue.sqlite3")
    # QUEUE_BACKEND=postgres: a libpq URL (postgresql://user:password@host:5432/dbname); it may
    # hold a password, so it is a secret.
    database_url: SecretStr | None = None
    # PostgreSQL: how long a worker holds the rows it claimed; a killed worker's rows come back
    # after this.
    claim_ttl_seconds: float = Field(default=120, gt=0)
    mail_backend: Literal["outbox", "resend"] = "outbox"
    outbox_dir: Path = Path("var/outbox")

    notion_token: SecretStr | None = None
    notion_api_base_url: str = NOTION_API_BASE_URL
    notion_email_queue_db_id: str | None = None
    notion_templates_db_id: str | None = None
    notion_contacts_db_id: str | None = None
    notion_workers_db_id: str | None = None
    notion_analytics_db_id: str | None = None
    notion_requests_per_second: float = Field(default=2.7, gt=0)

    resend_api_key: SecretStr | None = None
    resend_api_url: str | None = None
    # Resend allows 2 requests/s per team by default; its ratelimit-limit header says what an
    # account really has.
    resend_requests_per_second: float = Field(default=2.0, gt=0)
    # Emails per `POST /emails/batch` where the worker batches (SQLite or PostgreSQL with
    # Resend); 100 is Resend's most. Smaller batches cost more requests.
    resend_batch_size: int = Field(default=100, ge=1, le=100)
    email_from: str = "BusinessX <hello@businessx.com>"
    email_reply_to: str | None = None

    testing_mode: bool = False
    # The zone emails tell times in when neither the event nor the contact names one.
    default_timezone: str = "UTC"
    # At most this many emails per address per day of the recipient's calendar (unset: no cap).
    max_emails_per_day: int | None = Field(default=None, ge=1)
    poll_interval_seconds: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    send_concurrency: int = Field(default=4, ge=1, le=32)
    template_cache_seconds: float = Field(default=300, ge=0)

    webhook_secret: SecretStr | None = None
    calcom_webhook_secret: SecretStr | None = None
    calendly_webhook_signing_key: SecretStr | None = None
    resend_webhook_secret: SecretStr | None = None
    unsubscribe_secret: SecretStr | None = None
    # Turns the queue page (/queue) on; unset, /queue is a 404.
    admin_token: SecretStr | None = None
    public_base_url: str = "http://localhost:8000"
    cors_allow_origins: str = ""
    # Production only: accept unsigned website posts (a site that posts from the browser),
    # rate limited per client address and per email address.
    allow_unsigned_webhooks: bool = False
    unsigned_requests_per_minute_per_client: int = Field(default=30, ge=1)
    unsigned_requests_per_hour_per_address: int = Field(default=5, ge=1)
    # Proxies whose X-Forwarded-For/-Proto uvicorn believes (comma-separated, or "*").
    forwarded_allow_ips: str = "127.0.0.1,::1"

    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    state_dir: Path = Path("var/state")
    metrics_port: int | None = None
    sequences_file: Path | None = None

    _secrets_given_empty: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _empty_secret_is_unset(
        cls, data: Any, handler: ModelWrapValidatorHandler[Settings]
    ) -> Settings:
        """`WEBHOOK_SECRET=` would be an HMAC key anyone can compute: blank means unset.
        Which were given blank is remembered, so production can refuse them."""
        empty: set[str] = set()
        if isinstance(data, dict):
            data = dict(data)
            for name in SECRET_FIELDS:
                value = data.get(name)
                text = value.get_secret_value() if isinstance(value, SecretStr) else value
                if isinstance(text, str) and not text.strip():
                    data[name] = None
                    empty.add(name.upper())
        settings = handler(data)
        settings._secrets_given_empty = frozenset(empty)
        return settings

    @field_validator("default_timezone")
    @classmethod
    def _zone_is_iana(cls, value: str) -> str:
        zone_named(value)  # ValueError: "must be an IANA time zone name, e.g. Europe/Berlin"
        return value.strip()

    @field_validator("max_emails_per_day", mode="before")
    @classmethod
    def _blank_cap_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def default_zone(self) -> ZoneInfo:
        return zone_named(self.default_timezone)

    @property
    def secrets_given_empty(self) -> frozenset[str]:
        """The secret settings given as "" or whitespace (now None), by their variable names."""
        return self._secrets_given_empty

    @model_validator(mode="after")
    def _backends_have_what_they_need(self) -> Settings:
        if self.queue_backend == "notion":
            required = {
                "NOTION_TOKEN": self.notion_token,
                "NOTION_EMAIL_QUEUE_DB_ID": self.notion_email_queue_db_id,
                "NOTION_TEMPLATES_DB_ID": self.notion_templates_db_id,
                "NOTION_CONTACTS_DB_ID": self.notion_contacts_db_id,
                "NOTION_WORKERS_DB_ID": self.notion_workers_db_id,
            }
            for name, value in required.items():
                if not value or (isinstance(value, SecretStr) and not value.get_secret_value()):
                    hint = _HOW_TO_GET.get(name, "")
                    raise ValueError(f"{name} is required when QUEUE_BACKEND=notion{hint}")
        if self.queue_backend == "postgres" and self.database_url is None:
            raise ValueError(
                "DATABASE_URL is required when QUEUE_BACKEND=postgres"
                " (postgresql://user:password@host:5432/dbname)"
            )
        if self.mail_backend == "resend" and not (
            self.resend_api_key and self.resend_api_key.get_secret_value()
        ):
            raise ValueError("RESEND_API_KEY is required when MAIL_BACKEND=resend")
        return self

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origins.split(",") if o.strip()]

    def secrets(self) -> list[str]:
        """Every secret value, so the log redactor can blank them wherever they turn up."""
        fields = (
            self.notion_token,
            self.resend_api_key,
            self.webhook_secret,
            self.calcom_webhook_secret,
            self.calendly_webhook_signing_key,
            self.resend_webhook_secret,
            self.unsubscribe_secret,
            self.database_url,
            self.admin_token,
        )
        return [f.get_secret_value() for f in fields if f and f.get_secret_value()]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; a problem becomes one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]).upper()
        message = first["msg"].removeprefix("Value error, ")
        if location:
            message = f"{location}: {message}"
        raise ConfigError(message) from None
