"""The webhook server's HTTP side: the Starlette app (`app.py`), what it checks before journaling
(`signatures.py`, `json_body.py`, `rate_limit.py`), what it logs of refusals (`rejections.py`), what
/readyz reports (`readiness.py`), and its pages (`unsubscribe_pages.py`, `outbox_viewer.py`)."""
