"""One store transaction for a drained batch of intake events, instead of one per store call.

The drainer applies a bounded batch of journaled events inside `intake_batch()`, each event
inside `intake_event()`. A store that can (SQLite) opens one transaction for the batch and a
savepoint for each event: an event that raises leaves none of its writes behind, the others'
writes stay, and the whole batch reaches the disk in one commit (one fsync) at the end. A batch that raises, or whose
commit fails, leaves nothing in the store; its events are still pending in the journal, so they
are applied again, which intake's dedupe keys make harmless.

Stores whose every call commits on its own keep doing so (`EachCallCommits`): Notion, where a
write is an HTTP request, and PostgreSQL (per call for now).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, runtime_checkable


@runtime_checkable
class EventBatches(Protocol):
    def intake_batch(self) -> AbstractContextManager[None]:
        """One transaction: committed when the block ends, rolled back when it raises (or
        when the commit fails, which raises). Blocks the store's other users meanwhile."""
        ...

    def intake_event(self) -> AbstractContextManager[None]:
        """Inside intake_batch(): one event's writes, all kept or, when the block raises, none."""
        ...


class EachCallCommits:
    """A store without batches: every call is its own commit (nothing to do here)."""

    def intake_batch(self) -> AbstractContextManager[None]:
        return nullcontext()

    def intake_event(self) -> AbstractContextManager[None]:
        return nullcontext()


def event_batches(store: object) -> EventBatches:
    """The store's batches, or EachCallCommits when it has none."""
    return store if isinstance(store, EventBatches) else EachCallCommits()
