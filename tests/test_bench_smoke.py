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
    # llama.cpp is converted and timed in the full run only: the smoke run says it skipped it.
    assert summary["llamacpp"]["skipped"].startswith("smoke run")
    assert "llama.cpp peer: skipped — smoke run" in done.stdout


def test_llamacpp_peer_reads_the_replica_decoder_as_a_hugging_face_qwen3(
    flat_replica: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What llama.cpp's converter is given is the replica's decoder, whole: a Qwen3 folder
    transformers loads without a missing or unexpected tensor, holding the ``llm.*`` weights."""
    import torch
    from transformers import Qwen3ForCausalLM

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import llamacpp

    folder = llamacpp.export_hf_decoder(flat_replica, tmp_path / "hf")
    model, info = Qwen3ForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    checkpoint = torch.load(flat_replica / "model.pt", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    exported = model.state_dict()
    decoder = {name.removeprefix("llm."): t for name, t in state.items() if name.startswith("llm.")}
    assert decoder and all(torch.equal(exported[n].to(t.dtype), t) for n, t in decoder.items())
    # The floor's byte count is every matrix a token multiplies by: the projections and the head.
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert llamacpp.int8_weight_bytes(model.config.to_dict()) == linear


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
