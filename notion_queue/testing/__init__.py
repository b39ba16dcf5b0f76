"""Fakes of the outside world that ship with the package, as procrastinate ships its in-memory connector.

`FakeNotion` speaks Notion's HTTP API (2025-09-03) and `FakeResend` speaks Resend's, both with
rate limits, injectable faults and state that tests assert on. They run in process through an
`httpx.MockTransport`, or served on 127.0.0.1 when real server and worker processes are under test.
"""
