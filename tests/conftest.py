"""Shared pytest set-up: the tidings plugin (engine marker, TIDINGS_REQUIRE_ENGINES)."""

pytest_plugins = ["tidings.testing.pytest_plugin"]
