"""The benchmark's --smoke mode: the same code as the full run, on the tiny replica, so the
benchmark cannot rot. No timing is asserted here; benchmarks measure, tests check."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)  # several fresh processes, each importing torch and funasr
def test_bench_smoke_runs_both_sides_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| decode (ms/token) |" in done.stdout
    summary = json.loads(out.read_text())
    assert summary["smoke"] and summary["machine"]["torch"]
    columns = summary["results"]
    assert set(columns) == {
        "default fp32",
        "ours int8 first",
        "ours int8",
        "ours bf16",
        "ours fp32",
    }
    for column in columns.values():
        assert column["load_seconds"] > 0 and column["decode_ms_per_token"] > 0
    assert columns["ours int8 first"]["load_from_cache"] is False
    assert columns["ours int8"]["load_from_cache"] is True
    app = summary["app_at_rest"]
    assert app["rss_at_rest_mb"] > 0 and app["torch_loaded"] == 0.0


@pytest.mark.timeout(900)
def test_engine_process_bench_smoke_compares_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "engine-process.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "engine_process.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| cold load, INT8 from cache (s) |" in done.stdout
    summary = json.loads(out.read_text())
    for side in ("in process", "own process"):
        assert set(summary["medians"][side]) == {"load_s", "call_1s_s", "ten_minutes_s"}
        assert all(value > 0 for value in summary["medians"][side].values())
    assert summary["pipe_transfer_s"] > 0
