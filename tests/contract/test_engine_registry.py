"""Engines are found by URL scheme through the ``tidings.engines`` entry
points: a third-party distribution adds one, and the shipped conformance
suite runs on it unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings import ConfigurationError, open_engine
from tidings.engines import registry
from tidings.engines.sql import SQLiteEngine
from tidings.testing import QueueContract

THIRD_PARTY = Path(__file__).parent / "thirdparty"


@pytest.fixture
def demo_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if ``pip install tidings-demo-engine`` had run."""
    monkeypatch.syspath_prepend(str(THIRD_PARTY))


@pytest.mark.engine("memory")
class TestThirdPartyEngineQueues(QueueContract):
    """The conformance suite on an engine tidings knows nothing about."""

    @pytest.fixture
    def engine_url(self, demo_installed: None) -> str:
        return "demo://"


def test_third_party_scheme_opens_its_engine(demo_installed: None) -> None:
    engine = open_engine("demo://")
    try:
        assert type(engine).__name__ == "DemoEngine" and engine.url == "demo://"
    finally:
        engine.close()


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"sqlite://.*tidings\.engines"):
        open_engine("nosuch://x")


def test_entry_point_to_a_missing_module_says_what_to_install(demo_installed: None) -> None:
    with pytest.raises(ConfigurationError, match="tidings_demo_engine_not_installed"):
        open_engine("demo-missing://")


def test_builtins_work_without_entry_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An uninstalled checkout (no entry points at all) still opens every built-in."""
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert {"memory", "sqlite", "postgresql", "amqp", "amqps"} <= set(registry.schemes())
    engine = open_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert isinstance(engine, SQLiteEngine)
    finally:
        engine.close()


def test_installed_tidings_registers_its_engines_as_entry_points() -> None:
    """pyproject.toml's table and the in-code fallback name the same factories."""
    installed = {ep.name: ep.value for ep in registry.entry_points(group=registry.GROUP)}
    for scheme, target in registry.BUILTIN.items():
        assert installed.get(scheme) == target
