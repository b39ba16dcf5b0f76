#!/usr/bin/env python3
"""The long fault-injection soak (`make soak ARGS='--events 200 --kills 8'`): the real server and
worker processes against the fake Notion and Resend, with random faults, an outage and SIGKILLs.
Prints the figures as JSON; exits 1 if an invariant broke. The short version runs in `make test`
(tests/test_faults_soak.py). `--embedded` soaks the embedded default instead (SQLite queue, outbox
folder, the worker SIGKILLed while it sends; short version: tests/test_soak_embedded.py). `--postgres` soaks the PostgreSQL
queue: three workers SIGKILLed at random on a throw-away server (short version:
tests/test_soak_postgres.py)."""

from harness.soak import main  # scripts/harness/, beside this file

if __name__ == "__main__":
    raise SystemExit(main())
