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
from .config import GroupConfig, ProducerConfig, QueueConfig, TopicConfig
from .engines import open_engine
from .errors import (
    AlreadyExists,
    AlreadySettled,
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

__version__ = "0.1.0"

__all__ = [
    "BYTES",
    "JSON",
    "Ack",
    "AlreadyExists",
    "AlreadySettled",
    "AsyncClient",
    "AsyncConsumer",
    "AsyncProducer",
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
    "Features",
    "FencedError",
    "GroupConfig",
    "GroupNotFound",
    "JsonCodec",
    "LeaseLost",
    "NotFoundError",
    "PartitionNotFound",
    "Producer",
    "ProducerConfig",
    "PydanticCodec",
    "QueueConfig",
    "QueueFull",
    "QueueNotFound",
    "QueueStats",
    "RebalanceInProgress",
    "Record",
    "RecordMetadata",
    "RecordTooLarge",
    "SerializationError",
    "TidingsError",
    "TopicConfig",
    "TopicNotFound",
    "TopicPartition",
    "UnsupportedFeature",
    "open_engine",
    "__version__",
]
