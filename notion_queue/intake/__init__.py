"""Intake: webhook events → the durable journal → contact upserts and queue rows."""
