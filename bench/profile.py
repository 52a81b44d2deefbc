"""A CPU profile of a running Deno through its inspector (Chrome DevTools Protocol), and where it goes.

Deno 2.4.5 has no --cpu-prof; `--inspect` plus the Profiler domain gives the same V8 profile,
for exactly the window we choose.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import PurePosixPath

import httpx

# 1 ms between samples: a 20 s window gives ~20k samples, enough for shares of a few percent, and
# finer sampling (100 µs was tried) slows the profiled process enough to change what it measures.
SAMPLING_INTERVAL_US = 1000
NOT_JS = {"(idle)", "(program)", "(garbage collector)", "(root)"}


class CpuProfiler:
    def __init__(self, inspect_port: int) -> None:
        targets = httpx.get(f"http://127.0.0.1:{inspect_port}/json/list", timeout=10).json()
        from websockets.sync.client import connect

        self._ws = connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self._next_id = 0

    def _call(self, method: str, params: dict | None = None) -> dict:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self._ws.recv(timeout=120))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def start(self) -> None:
        self._call("Profiler.enable")
        self._call("Profiler.setSamplingInterval", {"interval": SAMPLING_INTERVAL_US})
        self._call("Profiler.start")

    def stop(self) -> dict:
        profile = self._call("Profiler.stop")["profile"]
        self._ws.close()
        return profile


def _where(frame: dict) -> str:
    url = frame.get("url") or ""
    if url.startswith("file://"):
        return PurePosixPath(url).name
    return url or "(native)"


def summarize_profile(profile: dict, frames: int, top: int = 15) -> dict:
    """Self time by function and by file; `frames` (caller frames relayed in the window) turns
    the busy time into a cost per frame, each frame meaning one caller frame up, one model delta
    down, and whatever the server does around them (marks, echoes)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    total_us = profile["endTime"] - profile["startTime"]
    samples = profile.get("samples") or []
    deltas = profile.get("timeDeltas") or []
    self_us: dict[int, float] = defaultdict(float)
    # Each sample stands for the time until the next one.
    for index, node_id in enumerate(samples):
        self_us[node_id] += deltas[index + 1] if index + 1 < len(deltas) else 0
    by_function: dict[tuple[str, str, int], float] = defaultdict(float)
    by_file: dict[str, float] = defaultdict(float)
    idle = 0.0
    for node_id, micros in self_us.items():
        frame = nodes[node_id]["callFrame"]
        name = frame.get("functionName") or "(anonymous)"
        if name == "(idle)":
            idle += micros
            continue
        where = name if name in NOT_JS else _where(frame)
        by_function[(name, where, frame.get("lineNumber", -1) + 1)] += micros
        by_file[where] += micros
    busy = sum(by_file.values())
    rows = sorted(by_function.items(), key=lambda item: -item[1])[:top]
    return {
        "window_ms": round(total_us / 1000, 1),
        "busy_share": round(busy / total_us, 3) if total_us else None,
        "busy_us_per_frame": round(busy / frames, 2) if frames else None,
        "top_functions": [
            {"function": name, "where": f"{where}:{line}" if line > 0 else where,
             "self_pct": round(100 * micros / busy, 1), "us_per_frame": round(micros / frames, 2) if frames else None}
            for (name, where, line), micros in rows
        ],
        "by_file": [
            {"where": where, "self_pct": round(100 * micros / busy, 1)}
            for where, micros in sorted(by_file.items(), key=lambda item: -item[1])[:top]
        ],
    }
