"""The files a function deploy uploads: the entrypoint, its deno.json, and every local module it
reaches through relative imports — the same set, in the same order, as `supabase functions deploy
--use-api` (observed with CLI 2.117.0, see tests/fixtures/official_cli/). `npm:`, `jsr:` and URL
imports are resolved by the server, so they are not followed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from supactl.errors import ConfigError

ENTRYPOINT = "index.ts"
IMPORT_MAP_NAMES = ("deno.json", "deno.jsonc")

# Static imports/re-exports (`import x from "./a.ts"`, `import "./a.ts"`, `export * from "./a.ts"`,
# `import type {T} from "./t.ts"`) and dynamic imports of a string literal (`import("./a.ts")`),
# in source order. Only relative specifiers: the rest resolve on the server.
_RELATIVE_IMPORT = re.compile(
    r"""\b(?:import|export)\s*(?:type\s+)?(?:[\w$*{}\s,]+?\s*from\s*)?(['"])(\.{1,2}/[^'"\n]+)\1"""
    r"""|\bimport\s*\(\s*(['"])(\.{1,2}/[^'"\n]+)\3\s*\)"""
)
_COMMENTED_OUT = re.compile(r"^\s*(//|\*)")


@dataclass(frozen=True)
class SourceFile:
    path: str  # POSIX path relative to the project root, as the API expects
    content: bytes


@dataclass(frozen=True)
class FunctionBundle:
    slug: str
    entrypoint_path: str
    import_map_path: str  # "" when the function has no deno.json
    files: tuple[SourceFile, ...]

    def content_sha256(self) -> str:
        """A digest of what a deploy would upload: equal digests mean nothing changed."""
        digest = hashlib.sha256()
        for header in (self.slug, self.entrypoint_path, self.import_map_path):
            digest.update(header.encode() + b"\0")
        for source in sorted(self.files, key=lambda f: f.path):
            digest.update(source.path.encode() + b"\0")
            digest.update(hashlib.sha256(source.content).digest())
        return digest.hexdigest()


def relative_imports(source: str) -> list[str]:
    specifiers = []
    for match in _RELATIVE_IMPORT.finditer(source):
        line_start = source.rfind("\n", 0, match.start()) + 1
        if _COMMENTED_OUT.match(source[line_start:match.start()]):
            continue
        specifiers.append(match.group(2) or match.group(4))
    return specifiers


def collect_function(project_root: Path, slug: str) -> FunctionBundle:
    """Read `supabase/functions/<slug>/` under `project_root` into the files a deploy uploads.

    Refuses a missing or empty folder, a missing entrypoint, and an import of a file that does not
    exist or lies outside the project (Deno would fail to bundle either on the server)."""
    root = project_root.resolve()
    folder = root / "supabase" / "functions" / slug
    shown = f"supabase/functions/{slug}"
    if not folder.is_dir():
        raise ConfigError(f"no function folder {shown} in {root}",
                          hint="run `supactl init` to write it, or pass --function NAME")
    if not any(p.is_file() for p in folder.rglob("*")):
        raise ConfigError(f"{shown} is empty: refusing to deploy nothing",
                          hint="run `supactl init --force` to restore the function's files")
    entry = folder / ENTRYPOINT
    if not entry.is_file():
        raise ConfigError(f"{shown} has no {ENTRYPOINT}", hint="the entrypoint must be index.ts")

    ordered: list[Path] = []
    import_map = next((folder / n for n in IMPORT_MAP_NAMES if (folder / n).is_file()), None)
    if import_map:
        ordered.append(import_map)
    ordered.extend(_walk_imports(entry, root))
    return FunctionBundle(
        slug=slug,
        entrypoint_path=_relative(entry, root),
        import_map_path=_relative(import_map, root) if import_map else "",
        files=tuple(SourceFile(_relative(p, root), p.read_bytes()) for p in ordered),
    )


def _walk_imports(entry: Path, root: Path) -> list[Path]:
    # The official CLI walks with a stack, marking a file when it is popped; matching that order
    # keeps our upload byte-identical to its upload for the same tree.
    stack, seen, order = [entry], set(), []
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        order.append(current)
        if current.suffix not in (".ts", ".tsx", ".js", ".jsx", ".mts", ".mjs"):
            continue
        for specifier in relative_imports(current.read_text(encoding="utf-8", errors="replace")):
            target = (current.parent / specifier).resolve()
            if not target.is_relative_to(root):
                raise ConfigError(f"{_relative(current, root)} imports {specifier}, outside the project",
                                  hint="keep shared code under supabase/functions/_shared/")
            if not target.is_file():
                raise ConfigError(f"{_relative(current, root)} imports {specifier}, which does not exist",
                                  hint="fix the import path; Deno would fail to bundle it")
            stack.append(target)
    return order


def _relative(path: Path, root: Path) -> str:
    return str(PurePosixPath(path.resolve().relative_to(root).as_posix()))
