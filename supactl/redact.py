"""Secrets never leave the process in clear: every message, log line and --json goes through here."""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_known: set[str] = set()

# Shapes of credentials that must be masked even if nobody registered them.
_PATTERNS = [
    # The password in a DB URL, up to the last '@' of the URL: a password holding a raw '@' is masked whole.
    re.compile(r"(postgres(?:ql)?://[^:/@\s'\"]+:)([^\s'\"]*)(@)"),
    re.compile(r"\b(sbp_(?:oauth_)?)[a-f0-9]{40}\b"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{16,}"),
]


def register(*secrets: str | None) -> None:
    """Remember values to mask wherever they appear later. Short values are ignored: masking
    every 'a' would make output unreadable and protect nothing."""
    with _lock:
        for secret in secrets:
            if secret and len(secret) >= 6:
                _known.add(secret)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(3) if m.lastindex and m.lastindex >= 3 else ""), text)
    return text
