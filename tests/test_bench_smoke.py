"""Each benchmark runs at a tiny size and produces numbers. Nothing here is about speed: benchmarks
measure, they assert nothing about time (issue 7). A benchmark that cannot run fails here."""

from __future__ import annotations

import math

import pytest

from bench import bridge_load, bridge_report, cli_bench, query_bench, up_bench
from supactl.selfhost.deno_release import SHIPPED_DENO_VERSION

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


def test_bridge_benchmark_relays_frames_on_both_runtimes_and_profiles_on_the_pinned_one(tmp_path):
    result = bridge_load.run(levels=(2,), targets=("bridge", "relay"), runtimes=("pinned", "shipped"), window_s=2,
                             warm_s=0.5, ramp_per_s=20, profile_calls=2, profile_dir=tmp_path)

    pinned, shipped = result["runtimes"]["pinned"], result["runtimes"]["shipped"]
    assert shipped == f"deno {SHIPPED_DENO_VERSION}" and pinned != shipped
    assert result["load_runtime"] == pinned
    assert [(level["runtime"], level["target"], level["calls"]) for level in result["levels"]] == [
        (pinned, "bridge", 2), (pinned, "relay", 2), (shipped, "bridge", 2), (shipped, "relay", 2)]
    for level in result["levels"]:
        assert "error" not in level, level.get("error")
        assert level["calls_live"] == 2, level["failures"]
        assert level["frames_sent"] > 0
        for direction in ("uplink", "downlink"):
            assert level[direction]["count"] > 0
            assert is_number(level[direction]["p99_ms"])
        assert all(is_number(level[key]) for key in ("cpu_s_per_call_minute", "rss_kb_per_call", "load_cpu_share"))
        # The function marks what it relays; the relay does not.
        assert (level["marks_received"] > 0) == (level["target"] == "bridge")
    assert result["profile"]["level"]["runtime"] == pinned  # an inspector on 2.8.3 is sent every frame
    assert result["profile"]["top_functions"]
    assert is_number(result["profile"]["busy_us_per_frame"])

    section = bridge_report.render(result, tmp_path)

    assert f"| 2 | {pinned} | bridge | 2 |" in section and f"| 2 | {shipped} | relay | 2 |" in section
    assert f"| {shipped} | bridge |" in section  # the item 6 table, one row per runtime and server
    svg = (tmp_path / bridge_report.PLOT_NAME).read_text()
    assert svg.startswith("<svg") and f"relay, {shipped}" in svg


def test_bridge_benchmark_repeats_each_server_in_turn_and_reports_the_median_run(tmp_path):
    result = bridge_load.run(levels=(2,), targets=("bridge", "relay"), runtimes=("pinned",), window_s=1,
                             warm_s=0.5, ramp_per_s=20, repeats=2)

    pinned = result["runtimes"]["pinned"]
    assert result["repeats"] == 2
    # Alternating, so a drift of the machine falls on both servers alike.
    assert [(level["target"], level["repeat"]) for level in result["runs"]] == [
        ("bridge", 0), ("relay", 0), ("bridge", 1), ("relay", 1)]
    assert all("error" not in level for level in result["runs"]), result["runs"]
    assert [(level["target"], level["calls"]) for level in result["levels"]] == [("bridge", 2), ("relay", 2)]
    for summary in result["levels"]:
        runs = summary["cpu_s_per_call_minute_runs"]
        assert summary["repeats"] == 2 and len(runs) == 2 and runs == sorted(runs)
        # Two runs: the median is the lower one, and its whole run stands for the level.
        assert summary["cpu_s_per_call_minute"] == runs[0]
        assert is_number(summary["cpu_spread_pct"])

    section = bridge_report.render(result, tmp_path)

    assert "Each server ran 2 times at each N" in section
    assert "CPU ratio within each repeat" in section and "2 pairs)" in section
    assert f"| {pinned} | 2 |" in section and "; runs " in section
    assert "within each repeat: " in section  # the issue 7 CPU target, paired as well as median


def test_bridge_benchmark_runs_the_function_of_a_baseline_commit_beside_todays(tmp_path):
    result = bridge_load.run(levels=(2,), targets=("relay",), runtimes=("pinned",), window_s=1, warm_s=0.5,
                             ramp_per_s=20, baseline="HEAD")

    pinned = result["runtimes"]["pinned"]
    assert result["baseline"] == "HEAD"
    # Before, after and the relay take turns in one run.
    assert [(level["target"], level["calls"]) for level in result["levels"]] == [
        ("bridge", 2), ("bridge_before", 2), ("relay", 2)]
    for level in result["levels"]:
        assert "error" not in level, level.get("error")
        assert level["calls_live"] == 2, level["failures"]
    assert result["levels"][1]["marks_received"] > 0, "the baseline is the function, marks and all"

    section = bridge_report.render(result, tmp_path)

    assert "### Before and after (issue 17)" in section and "as of `HEAD`" in section
    assert f"| {pinned} | 2 | " in section.split("### Before and after")[1]


def test_a_baseline_target_needs_a_commit_and_a_bad_commit_is_named(tmp_path):
    assert "bridge_before" not in bridge_load.TARGETS, "a run with the default targets needs no baseline"
    assert "bridge_before" in bridge_load.ALL_TARGETS
    with pytest.raises(bridge_load.BenchError, match="needs a baseline"):
        bridge_load.run(levels=(2,), targets=("bridge_before",), runtimes=("pinned",))
    with pytest.raises(bridge_load.BenchError, match="--baseline no-such-ref: git archive failed"):
        bridge_load.export_function("no-such-ref", tmp_path)
