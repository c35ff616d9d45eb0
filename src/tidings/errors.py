"""The whole tidings error tree.

Every exception tidings raises derives from :class:`TidingsError`; driver
errors are translated at the engine boundary and kept on ``__cause__``.
A class's docstring is its default message.

::

    TidingsError
    ├── ConfigurationError          bad option, URL, name or duration
    │   └── AccessRefused           the engine refused the credentials or vhost
    ├── UnsupportedFeature          the engine declares it cannot do this
    ├── EngineError                 (retriable flag)
    │   ├── EngineUnavailable       cannot reach / open the engine
    │   ├── EngineTimeout           the engine did not answer in time
    │   ├── EngineConflict          a concurrent transaction won (deadlock, serialization)
    │   ├── EngineStorageFull       the engine's disk is full
    │   └── EngineProtocolError     the engine answered something unexpected
    │       └── CorruptDataError    a stored batch failed its checksum
    ├── NotFoundError
    │   ├── TopicNotFound
    │   ├── PartitionNotFound
    │   ├── QueueNotFound
    │   ├── GroupNotFound
    │   └── FailedEventNotFound
    ├── ConflictError
    │   ├── AlreadyExists
    │   ├── FencedError             a member whose session expired or lost its assignment
    │   ├── RebalanceInProgress
    │   ├── QueueFull               max_length reached with overflow=reject
    │   ├── AlreadyResolved         triage on a failed event already replayed/republished/discarded
    │   └── BufferFull              the producer's buffer stayed full for max_block_s
    ├── DeliveryError
    │   ├── LeaseLost               ack/nack after the lease expired
    │   └── AlreadySettled          ack/nack twice
    ├── RecordTooLarge
    └── SerializationError          a codec could not encode or decode a value
"""

from __future__ import annotations


class TidingsError(Exception):
    """A tidings operation failed."""

    #: Whether repeating the same call later may succeed.
    retriable: bool = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(TidingsError, ValueError):
    """An option, URL or name is invalid."""


class AccessRefused(ConfigurationError):
    """The engine refused the login (wrong user or password) or the user's
    access to the database or vhost: fix the URL or grant the access."""


class UnsupportedFeature(TidingsError):
    """The engine does not support this feature (see its ``Features``)."""


class EngineError(TidingsError):
    """The engine failed."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached or opened."""

    retriable = True


class EngineTimeout(EngineError):
    """The engine did not answer in time (for SQLite: the file stayed locked)."""

    retriable = True


class EngineConflict(EngineError):
    """The engine aborted the transaction because of a concurrent one (a
    deadlock or a serialization failure); nothing of it was written: retry
    the call."""

    retriable = True


class EngineStorageFull(EngineError):
    """The engine cannot write: its disk is full. Free space on the database
    server (or lower retention), then retry."""


class EngineProtocolError(EngineError):
    """The engine answered something tidings did not expect."""


class CorruptDataError(EngineProtocolError):
    """Stored data failed its checksum; the rest of the log stays readable."""


class NotFoundError(TidingsError, LookupError):
    """The named object does not exist."""


class TopicNotFound(NotFoundError):
    """The topic does not exist: create it with `tidings topics create NAME`."""


class PartitionNotFound(NotFoundError):
    """The partition does not exist in this topic."""


class QueueNotFound(NotFoundError):
    """The queue does not exist: declare it with `tidings queues declare NAME`."""


class GroupNotFound(NotFoundError):
    """The consumer group does not exist."""


class ConflictError(TidingsError):
    """The operation conflicts with the current state."""


class AlreadyExists(ConflictError):
    """An object with this name already exists."""


class FencedError(ConflictError):
    """This group member was fenced (its session expired or it lost the
    partition); rejoin the group and reprocess from the committed offset."""


class RebalanceInProgress(ConflictError):
    """The group is rebalancing; retry after the next heartbeat."""

    retriable = True


class DeliveryError(TidingsError):
    """A delivery could not be settled."""


class LeaseLost(DeliveryError):
    """The lease on this delivery expired; the message will be redelivered."""


class AlreadySettled(DeliveryError):
    """This delivery was already acked, nacked or rejected."""


class RecordTooLarge(TidingsError, ValueError):
    """The record exceeds the topic's or queue's maximum size."""


class SerializationError(TidingsError, ValueError):
    """A value could not be encoded or decoded by the codec."""


class QueueFull(ConflictError):
    """The queue is at its max_length and its overflow policy is reject."""


class FailedEventNotFound(NotFoundError):
    """No failed event has this id: list them with `tidings failed list`."""


class AlreadyResolved(ConflictError):
    """The failed event was already replayed, republished or discarded (or
    another triage action on it is under way); see `tidings failed show ID`."""


class BufferFull(ConflictError):
    """The producer's buffer (``buffer_bytes``) stayed full for ``max_block_s``:
    records are sent faster than the engine stores them. Slow down (await the
    acks, ``flush()``), raise ``buffer_bytes`` or ``max_block_s``, or use
    ``send_batch``. The record was not sent."""

    retriable = True
