"""Mailer adapters: Resend (production) and an outbox folder of .eml files (embedded default)."""
