"""Split a migration file into statements the way `supabase db push` does.

The history table stores each file's statements, so two tools agree on what was applied only if
they split identically: on `;` outside quotes, dollar quotes, comments (block comments nest) and
`BEGIN ATOMIC … END` bodies; each piece trimmed of white space, empty pieces dropped, comment-only
pieces kept. Checked against supabase CLI 2.117.0 (tests/fixtures/migration_split/).
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_BEGIN_ATOMIC = re.compile(r"begin\s+atomic\b", re.IGNORECASE)


def split_statements(sql: str) -> list[str]:
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    atomic_depth = 0  # > 0 inside BEGIN ATOMIC; CASE … END inside it nests
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "'" or ch == '"':
            i = _skip_quoted(sql, i, ch)
        elif ch == "$" and (match := _DOLLAR_TAG.match(sql, i)) and not _is_word_char(sql, i - 1):
            closing = sql.find(match.group(0), match.end())
            i = n if closing < 0 else closing + len(match.group(0))
        elif _is_word_start(sql, i):
            word_match = _WORD.match(sql, i)
            assert word_match is not None
            word = word_match.group(0).lower()
            if word == "begin" and (atomic := _BEGIN_ATOMIC.match(sql, i)):
                atomic_depth += 1
                i = atomic.end()
                continue
            if atomic_depth:
                if word == "case":
                    atomic_depth += 1
                elif word == "end":
                    atomic_depth -= 1
            i = word_match.end()
        elif ch == ";" and not atomic_depth:
            _append(statements, sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    _append(statements, sql[start:])
    return statements


def _append(statements: list[str], piece: str) -> None:
    piece = piece.strip()
    if piece:
        statements.append(piece)


def _is_word_char(sql: str, i: int) -> bool:
    return i >= 0 and (sql[i].isalnum() or sql[i] in "_$")


def _is_word_start(sql: str, i: int) -> bool:
    return (sql[i].isalpha() or sql[i] == "_") and not _is_word_char(sql, i - 1)


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """Past a '…' string or "…" identifier; a doubled quote is part of it."""
    i += 1
    while i < len(sql):
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i
