"""The log conformance suite (contracts L1–L6 of DESIGN.md).

Every engine passes the same tests. Subclass :class:`LogContract` once per
engine in a ``test_*.py`` file and override the ``engine_url`` fixture::

    import pytest
    from tidings.testing import LogContract

    class TestMemoryLog(LogContract):
        @pytest.fixture
        def engine_url(self) -> str:
            return "memory://"

Each test opens its own :class:`~tidings.Client` on that URL and uses topic
and group names no other test uses. Tests of a feature the engine declares
unsupported in its :class:`~tidings.Features` are skipped.
"""

from __future__ import annotations

from ._append import AppendContract
from ._consume import ConsumeContract
from ._groups import GroupContract
from ._maintenance import MaintenanceContract
from ._runtime import FailedEventsContract, RuntimeContract
from ._topics import TopicContract
from ._transactions import TransactionalAckContract, TransactionalCommitContract


class LogContract(
    TopicContract,
    AppendContract,
    ConsumeContract,
    GroupContract,
    MaintenanceContract,
    RuntimeContract,
    TransactionalCommitContract,
):
    """All log contract tests; subclass it and provide ``engine_url``."""


__all__ = [
    "AppendContract",
    "ConsumeContract",
    "FailedEventsContract",
    "GroupContract",
    "LogContract",
    "MaintenanceContract",
    "RuntimeContract",
    "TopicContract",
    "TransactionalAckContract",
    "TransactionalCommitContract",
]
