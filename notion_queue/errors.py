"""Errors by what the caller must do about them, so a retry policy is one `except`.

NotionQueueError
 ├── ConfigError          settings, catalog or schema are wrong: the process cannot start
 │    └── CorruptFile     a journal or queue file is damaged: move it aside, then start
 ├── RetryableError       try the same thing again later (any 429 or 529, 5xx, timeout, network)
 │    ├── RateLimited     ... after `retry_after` seconds
 │    └── MaybeWritten    a write may have happened: look before writing again
 ├── PermanentError       this row will never work as it is: fail it with the message
 │    ├── RenderError     a template variable has no value, or the template is broken
 │    └── TemplateNotFound
 └── AccountError         the account is broken (bad key, unverified domain, quota, Notion's
                          429 public_api_request_blocked):
                          stop sending, fail no row, resume when a probe succeeds
"""

from __future__ import annotations


class NotionQueueError(Exception):
    pass


class ConfigError(NotionQueueError):
    pass


class CorruptFile(ConfigError):
    """An SQLite file that SQLite itself calls damaged; the message says what to do."""


class RetryableError(NotionQueueError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    pass


class MaybeWritten(RetryableError):
    """A create or send whose outcome is unknown (a timeout, a 5xx after the request went out)."""


class PermanentError(NotionQueueError):
    pass


class RenderError(PermanentError):
    pass


class TemplateNotFound(PermanentError):
    pass


class AccountError(NotionQueueError):
    """`retry_after`: trying again sooner is pointless (a quota resets at the next UTC day)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
