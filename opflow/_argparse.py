"""Argument types shared by the ``opflow`` subcommands."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["key_value"]


def key_value(text: str) -> tuple[str, Any]:
    """``--option KEY=VALUE``: VALUE is read as JSON when it parses (numbers, lists,
    booleans), else kept as a string (``geometries=square,lshape``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
