"""bench/embed_gpu.py is the GPU benchmark; its code runs here on the CPU, so that a
machine with a GPU runs what CI has run."""

from __future__ import annotations

from bench.embed_gpu import run


def test_the_gpu_benchmark_runs_every_dtype_and_measures_its_drift() -> None:
    (row,) = run("cpu", batch_sizes=[2], repeats=1)
    assert row["batch"] == 2
    assert all(row[name] > 0 for name in ("fp32", "fp16", "bf16"))
    assert row["fp32 drift"] == 0  # fp32 is the reference
    # Reduced precision moves embeddings a little, never like a different face (~0.1).
    assert 0 < row["fp16 drift"] < 1e-2 and 0 < row["bf16 drift"] < 1e-2
