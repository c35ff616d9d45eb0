"""tidings: reliable, event-driven messaging between services.

Partitioned logs and queues behind one API, sync and async, on an embedded
SQLite engine or an in-memory one (more engines to come)::

    from tidings import Client

    with Client("sqlite:///bus.db") as client:
        client.create_topic("bookings", partitions=3)
        client.produce("bookings", b'{"id": 1}', key="b-1")
        with client.consumer("bookings", group="billing", start="beginning") as c:
            for record in c.poll(timeout=1):
                print(record.offset, record.value)
"""

from .client import Ack, AsyncClient, AsyncConsumer, AsyncProducer, Client, Consumer, Producer
from .codecs import BYTES, JSON, BytesCodec, Codec, JsonCodec, PydanticCodec
from .config import AsyncConfig, GroupConfig, ProducerConfig, QueueConfig, TopicConfig
from .engines import open_engine
from .errors import (
    AccessRefused,
    AlreadyExists,
    AlreadyResolved,
    AlreadySettled,
    BufferFull,
    ConfigurationError,
    ConflictError,
    CorruptDataError,
    DeliveryError,
    EngineConflict,
    EngineError,
    EngineProtocolError,
    EngineStorageFull,
    EngineTimeout,
    EngineUnavailable,
    FailedEventNotFound,
    FencedError,
    GroupNotFound,
    LeaseLost,
    NotFoundError,
    PartitionNotFound,
    QueueFull,
    QueueNotFound,
    RebalanceInProgress,
    RecordTooLarge,
    SerializationError,
    TidingsError,
    TopicNotFound,
    UnsupportedFeature,
)
from .features import Features
from .message import Delivery, QueueStats, Record, RecordMetadata, TopicPartition
from .outbox import AsyncOutbox, Outbox, OutboxNotFound, OutboxSchemaError, Relay, RelayFenced
from .ports.engine import MaintenanceStatus
from .runtime import App, BreakerPolicy, HandlerContext, Reject, Retry, RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "BYTES",
    "JSON",
    "AccessRefused",
    "Ack",
    "AlreadyExists",
    "AlreadyResolved",
    "AlreadySettled",
    "App",
    "AsyncClient",
    "AsyncConsumer",
    "AsyncOutbox",
    "AsyncProducer",
    "BreakerPolicy",
    "BytesCodec",
    "Client",
    "Codec",
    "ConfigurationError",
    "ConflictError",
    "Consumer",
    "CorruptDataError",
    "Delivery",
    "DeliveryError",
    "EngineConflict",
    "EngineError",
    "EngineProtocolError",
    "EngineStorageFull",
    "EngineTimeout",
    "EngineUnavailable",
    "FailedEventNotFound",
    "Features",
    "FencedError",
    "GroupConfig",
    "GroupNotFound",
    "HandlerContext",
    "JsonCodec",
    "LeaseLost",
    "MaintenanceStatus",
    "NotFoundError",
    "Outbox",
    "OutboxNotFound",
    "OutboxSchemaError",
    "PartitionNotFound",
    "Producer",
    "ProducerConfig",
    "AsyncConfig",
    "PydanticCodec",
    "QueueConfig",
    "QueueFull",
    "BufferFull",
    "QueueNotFound",
    "QueueStats",
    "RebalanceInProgress",
    "Record",
    "RecordMetadata",
    "RecordTooLarge",
    "Relay",
    "RelayFenced",
    "Reject",
    "Retry",
    "RetryPolicy",
    "SerializationError",
    "TidingsError",
    "TopicConfig",
    "TopicNotFound",
    "TopicPartition",
    "UnsupportedFeature",
    "open_engine",
    "__version__",
]
