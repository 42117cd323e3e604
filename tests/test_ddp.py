"""``torchrun --nproc_per_node 2 -m yolov3 train`` (gloo, CPU) steps like one process with the same
global batch.

Making the two comparable: the train split is exactly one global batch (4 images), so every step
sees the same images whatever the sampler's order; augmentation is off (each process has its own
RNG stream); ``--freeze-bn`` keeps batch-norm on its running statistics, so per-process batch
statistics (2 images vs 4) do not enter (SyncBatchNorm needs CUDA). SGD, whose update is
proportional to the gradient, so a sum instead of a mean over processes would show.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from yolov3.data.synth import SynthConfig, generate
from yolov3.model import YOLOv3


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_two_gloo_processes_match_one_process(tmp_path):
    data, _ = generate(tmp_path / "data", SynthConfig(n=5, size=64, seed=2, max_objects=3), progress=False)
    project = tmp_path / "runs"
    args = ["train", "--data", str(data), "--img", "64", "--width", "0.125", "--epochs", "3", "--batch", "4",
            "--optimizer", "sgd", "--lr-init", "0.02", "--lr-end", "0.01", "--warmup-epochs", "0",
            "--device", "cpu", "--amp", "off", "--workers", "0", "--no-augment", "--freeze-bn",
            "--seed", "0", "--project", str(project)]  # fmt: skip
    one = subprocess.run([sys.executable, "-m", "yolov3", *args, "--name", "one"],
                         env=env(), capture_output=True, text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run([*torchrun, "-m", "yolov3", *args, "--name", "two"],
                         env=env(), capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "cpu x2" in (project / "two" / "train.log").read_text()
    assert not (project / "two2").exists()  # only rank 0 made a run folder

    a = torch.load(project / "one/weights/last.pt", weights_only=True)
    b = torch.load(project / "two/weights/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    torch.manual_seed(0)  # the trainer seeds with --seed (+ rank) before building the model
    init = YOLOv3(5, width=0.125).state_dict()
    moved = 0.0
    for name, p in a["model"].items():
        if not p.is_floating_point():
            continue
        torch.testing.assert_close(
            b["model"][name], p, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
        )
        moved = max(moved, float((p - init[name]).abs().max()))
    assert moved > 1e-3, "training must move the weights well beyond the tolerance"
