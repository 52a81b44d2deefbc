"""Each benchmark runs at a tiny size and produces numbers. Nothing here is about speed: benchmarks
measure, they assert nothing about time (issue 7). A benchmark that cannot run fails here."""

from __future__ import annotations

import math

import pytest

from bench import bridge_load, bridge_report, cli_bench, query_bench, up_bench

pytestmark = pytest.mark.slow


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_query_benchmark_produces_timings_at_tiny_size():
    result = query_bench.run(tenants=5, turns=500, samples=3)

    assert result["turns"] == 500
    for query in result["queries"]:
        assert all(is_number(query[key]) for key in ("ours_p50_ms", "ours_p99_ms", "baseline_p50_ms", "baseline_p99_ms"))


def test_cli_benchmark_produces_cold_start_times():
    result = cli_bench.run(runs=1)

    assert all(is_number(result[key]) for key in ("supactl_help_s", "supactl_version_s", "bare_python_s"))


def test_up_benchmark_times_a_changing_and_an_unchanged_run():
    result = up_bench.run(repeats=1)

    assert is_number(result["first_run_s"]) and is_number(result["second_run_s"])


def test_bridge_benchmark_relays_frames_through_function_and_relay_and_profiles(tmp_path):
    result = bridge_load.run(levels=(2,), targets=("bridge", "relay"), window_s=2, warm_s=0.5, ramp_per_s=20,
                             profile_calls=2, profile_dir=tmp_path)

    assert [(level["target"], level["calls"]) for level in result["levels"]] == [("bridge", 2), ("relay", 2)]
    for level in result["levels"]:
        assert "error" not in level, level.get("error")
        assert level["calls_live"] == 2, level["failures"]
        assert level["frames_sent"] > 0
        for direction in ("uplink", "downlink"):
            assert level[direction]["count"] > 0
            assert is_number(level[direction]["p99_ms"])
        assert all(is_number(level[key]) for key in ("cpu_s_per_call_minute", "rss_kb_per_call", "load_cpu_share"))
    assert result["levels"][0]["marks_received"] > 0  # the function marks what it relays; the relay does not
    assert result["profile"]["top_functions"]
    assert is_number(result["profile"]["busy_us_per_frame"])

    section = bridge_report.render(result, tmp_path)

    assert "| 2 | bridge | 2 |" in section
    assert (tmp_path / bridge_report.PLOT_NAME).read_text().startswith("<svg")
