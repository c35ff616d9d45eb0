"""Client-side API: Client/AsyncClient, producers and consumers."""

from .aio import AsyncClient, AsyncConsumer, AsyncProducer
from .client import Client
from .consumer import Consumer
from .producer import Ack, Producer

__all__ = ["Ack", "AsyncClient", "AsyncConsumer", "AsyncProducer", "Client", "Consumer", "Producer"]
