"""QueueStore adapters: Notion (production) and SQLite (embedded default)."""
