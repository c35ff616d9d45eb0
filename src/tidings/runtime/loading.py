"""Finding an App from ``module:attribute`` (``tidings run``, replay)."""

from __future__ import annotations

import importlib
import os
import sys

from ..errors import ConfigurationError
from .app import App


def load_app(path: str) -> App:
    """Import ``module:attribute`` (the current directory is importable);
    raises ConfigurationError naming what to fix."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"app path {path!r} must look like module:attribute, e.g. shop:app"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} for app {path!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        found = "nothing" if app is None else type(app).__name__
        raise ConfigurationError(f"{path!r} is {found}, not a tidings.runtime.App")
    return app
