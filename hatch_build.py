"""Wheel build hook: the wheel carries the function's runtime files and the migrations, nothing else.

A static `force-include` of supabase/functions would copy the whole folder (hatchling exempts
force-included paths from every exclude), tests and fakes included, and whatever else sits on the
builder's disk. This hook names each file instead, chosen by the same rule `supactl init` uses
(supactl/project_files.py, loaded by path: the build environment has none of supactl's dependencies).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_WHEEL_PREFIX = Path("supactl") / "_project" / "supabase"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # an editable install reads the checkout's supabase/ directly
        root = Path(self.root)
        spec = importlib.util.spec_from_file_location("_supactl_project_files", root / "supactl" / "project_files.py")
        assert spec and spec.loader
        project_files = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(project_files)
        for rel in project_files.product_files(root / "supabase"):
            build_data["force_include"][str(root / "supabase" / rel)] = str(_WHEEL_PREFIX / rel)
