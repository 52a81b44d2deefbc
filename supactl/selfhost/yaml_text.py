"""Kubernetes objects as YAML text, without a YAML library: the objects are plain dicts, lists,
strings, numbers and booleans, and every string is written JSON-quoted (a JSON string is a valid
YAML double-quoted scalar), so "true", "8000" or "*" stay strings."""

from __future__ import annotations

import json
from typing import Any, Iterable


def dump_documents(documents: Iterable[dict[str, Any]]) -> str:
    return "".join("---\n" + "\n".join(_lines(document, 0)) + "\n" for document in documents)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"not a manifest value: {value!r}")


def _key(name: str) -> str:
    return name if name.replace("-", "").replace(".", "").replace("/", "").replace("_", "").isalnum() \
        else json.dumps(name)


def _lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for name, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{_key(name)}:")
                lines.extend(_lines(item, indent + (0 if isinstance(item, list) else 1)))
            else:
                lines.append(f"{pad}{_key(name)}: {_inline(item)}")
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            nested = _lines(item, indent + 1)
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return lines
    return [pad + _scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
