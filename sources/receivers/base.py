"""The small interface every push receiver implements: decode -> aggregate -> apply.

A pull connector (`sources.sync.base.Connector`) fetches records and applies batches of
them inside the runner's transactions. A push path is the other way round: the source
sends one delivery (an OTLP export, a registry webhook, a CI/CD deployment event) and the
view answers it. Each receiver splits that delivery's handling the same way:

- `decode(body, headers)` checks and parses what was sent into a message: content type,
  compression, signature, schema. Pure (no writes); refusals raise `ReceiverError` with
  the HTTP status to answer (400, 401, 413, 415 …).
- `aggregate(message)` turns the message into the batch to write: OTLP sums spans into
  hourly buckets; a webhook keeps only registry events (None: nothing to do). The
  default is the message itself, for pushes that carry one change.
- `apply(batch)` writes it, owning its transaction, and returns what the view reports.

Views stay thin: authenticate, read the capped body, call `receive()`, render the result
or the `ReceiverError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

Message = TypeVar("Message")
Batch = TypeVar("Batch")
Result = TypeVar("Result")


class ReceiverError(Exception):
    """A delivery the receiver refuses; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Receiver(Generic[Message, Batch, Result]):
    """Base class. Subclasses implement decode() and apply(); aggregate() when it sums."""

    kind: ClassVar[str]

    def decode(self, body: Any, headers: Mapping[str, str]) -> Message:
        raise NotImplementedError

    def aggregate(self, message: Message) -> Batch:
        return message  # type: ignore[return-value]

    def apply(self, batch: Batch) -> Result:
        raise NotImplementedError

    def receive(self, body: Any, headers: Mapping[str, str]) -> Result:
        return self.apply(self.aggregate(self.decode(body, headers)))
