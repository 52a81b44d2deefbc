"""supactl.cloud.deploy_bundle: which files a deploy uploads, in the official CLI's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from supactl.cloud.deploy_bundle import collect_function, relative_imports
from supactl.errors import ConfigError
from supactl.project_files import bundled_supabase_dir

FIXTURES = Path(__file__).parent / "fixtures" / "official_cli"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "supabase" / "functions" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_follows_every_kind_of_relative_import_in_the_official_cli_order():
    bundle = collect_function(FIXTURES / "deploy_with_imports" / "project", "twilio-voice")
    # Order observed from `supabase functions deploy --use-api` (2.117.0) for this tree.
    assert [f.path for f in bundle.files] == [
        "supabase/functions/twilio-voice/deno.json",
        "supabase/functions/twilio-voice/index.ts",
        "supabase/functions/twilio-voice/lib/data.json",
        "supabase/functions/twilio-voice/lib/types.ts",
        "supabase/functions/twilio-voice/lib/shout.ts",
        "supabase/functions/twilio-voice/lib/greet.ts",
        "supabase/functions/twilio-voice/lib/lazy.ts",
        "supabase/functions/_shared/util.ts",
        "supabase/functions/twilio-voice/lib/side.ts",
    ]
    assert bundle.entrypoint_path == "supabase/functions/twilio-voice/index.ts"
    assert bundle.import_map_path == "supabase/functions/twilio-voice/deno.json"


def test_leaves_out_tests_and_unimported_files():
    bundle = collect_function(FIXTURES / "deploy_with_imports" / "project", "twilio-voice")
    paths = {f.path for f in bundle.files}
    assert not any(p.endswith(("_test.ts", "unused.ts")) for p in paths)


def test_a_test_file_is_uploaded_when_the_code_imports_it(tmp_path):
    write(tmp_path, {"f/index.ts": 'import { x } from "./helpers_test.ts";', "f/helpers_test.ts": "export const x = 1;"})
    assert [f.path for f in collect_function(tmp_path, "f").files][-1] == "supabase/functions/f/helpers_test.ts"


def test_without_deno_json_the_import_map_path_is_empty(tmp_path):
    write(tmp_path, {"f/index.ts": "Deno.serve(() => new Response());"})
    bundle = collect_function(tmp_path, "f")
    assert bundle.import_map_path == "" and [f.path for f in bundle.files] == ["supabase/functions/f/index.ts"]


def test_remote_and_commented_out_imports_are_not_followed():
    source = '''import { z } from "npm:zod@3";
import x from "jsr:@std/x";
import y from "https://deno.land/x/y.ts";
// import old from "./old.ts";
/*
 * import older from "./older.ts";
 */
import {
  a,
  b as c,
} from "./multi.ts";
export * from '../shared/all.ts';
const lazy = await import( "./lazy.ts" );
const notLiteral = await import(name);
'''
    assert relative_imports(source) == ["./multi.ts", "../shared/all.ts", "./lazy.ts"]


def test_refuses_a_missing_function_folder(tmp_path):
    with pytest.raises(ConfigError, match="no function folder supabase/functions/twilio-voice"):
        collect_function(tmp_path, "twilio-voice")


def test_refuses_an_empty_function_folder(tmp_path):
    (tmp_path / "supabase" / "functions" / "twilio-voice" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is empty: refusing to deploy nothing"):
        collect_function(tmp_path, "twilio-voice")


def test_refuses_a_folder_without_index_ts(tmp_path):
    write(tmp_path, {"f/main.ts": ""})
    with pytest.raises(ConfigError, match="has no index.ts"):
        collect_function(tmp_path, "f")


def test_refuses_an_import_of_a_missing_file(tmp_path):
    write(tmp_path, {"f/index.ts": 'import "./gone.ts";'})
    with pytest.raises(ConfigError, match=r"index.ts imports ./gone.ts, which does not exist"):
        collect_function(tmp_path, "f")


def test_refuses_an_import_outside_the_project(tmp_path):
    (tmp_path / "outside.ts").write_text("")
    project = tmp_path / "project"
    write(project, {"f/index.ts": 'import "../../../../outside.ts";'})
    with pytest.raises(ConfigError, match="outside the project"):
        collect_function(project, "f")


def test_digest_changes_with_any_uploaded_byte_and_not_with_other_files(tmp_path):
    write(tmp_path, {"f/index.ts": 'import "./a.ts";', "f/a.ts": "1", "f/notes.md": "x"})
    before = collect_function(tmp_path, "f").content_sha256()
    (tmp_path / "supabase/functions/f/notes.md").write_text("y")
    assert collect_function(tmp_path, "f").content_sha256() == before
    (tmp_path / "supabase/functions/f/a.ts").write_text("2")
    assert collect_function(tmp_path, "f").content_sha256() != before


def test_the_shipped_function_bundles(tmp_path):
    if not (bundled_supabase_dir() / "functions" / "twilio-voice" / "index.ts").is_file():
        pytest.skip("the function's index.ts is not written yet")
    bundle = collect_function(bundled_supabase_dir().parent, "twilio-voice")
    paths = [f.path for f in bundle.files]
    assert paths[:2] == ["supabase/functions/twilio-voice/deno.json", "supabase/functions/twilio-voice/index.ts"]
    assert not any(p.endswith("_test.ts") for p in paths)
