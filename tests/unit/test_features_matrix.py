"""The guarantees matrix in the docs is generated from the engines'
declared Features, so it cannot drift from what the code refuses."""

from __future__ import annotations

import re
from pathlib import Path

from tidings.cli.main import main
from tidings.engines.registry import declared_features
from tidings.features import LABELS, Features, matrix_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"


def test_docs_matrix_is_what_the_engines_declare() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- features:begin[^>]*-->\n(.*?)<!-- features:end -->", text, re.S)
    assert found, "docs/concepts.md lost its generated features block"
    assert found.group(1) == matrix_markdown(declared_features()), (
        "docs/concepts.md is stale: paste the output of `tidings features --markdown`"
    )


def test_every_feature_has_a_label_and_every_engine_a_column() -> None:
    assert set(LABELS) == set(Features.__dataclass_fields__)
    engines = declared_features()
    assert {"memory", "sqlite", "postgresql", "amqp"} <= set(engines)
    assert "postgres" not in engines  # an alias shares its engine's column
    assert engines["memory"] is not None and engines["memory"].durability == "none"


def test_cli_prints_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["features", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == matrix_markdown(declared_features())
    assert main(["features"]) == 0
    plain = capsys.readouterr().out
    assert "Q3 dedup by idempotency key" in plain and "amqp" in plain.splitlines()[0]
