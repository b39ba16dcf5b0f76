#!/usr/bin/env python3
"""`make bench` (ARGS="--quick" for a run of about a minute): the real server and worker against
the fake Notion and fake Resend on loopback, with the seed's loop as a baseline. Writes
bench-results/results.json and results.md (`--out DIR`); every size is a flag (`--help`)."""

from harness.bench import main  # scripts/harness/, beside this file

if __name__ == "__main__":
    raise SystemExit(main())
