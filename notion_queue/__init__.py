"""notion-queue: an email funnel run out of Notion.

Webhooks schedule emails as rows of a Notion database; a worker sends the due rows through Resend
and marks each one sent or failed. The embedded default (SQLite queue, outbox folder) behaves the
same way without any account.
"""

__version__ = "0.1.0"
