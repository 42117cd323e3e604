"""A run killed with SIGKILL mid-epoch and resumed ends with the same weights as a run never stopped.

Three ``python -m yolov3 train`` processes (deterministic CPU mode, one thread, augmentation on):
the reference; a run killed at a mid-epoch checkpoint (``--save-period 1`` writes one per step); and
its ``--resume``. The resumed run's final weights and optimiser state must equal the reference's
exactly: the checkpoint's RNG states let the resumed loader replay the epoch's order and
augmentation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from yolov3.data.synth import SynthConfig, generate

EPOCHS, STEPS_PER_EPOCH = 3, 4  # 8 training images (of 10) in batches of 2


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "yolov3", "train", *args]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def common(data: str, project: Path) -> list[str]:
    return ["--data", data, "--img", "64", "--width", "0.125", "--epochs", str(EPOCHS), "--batch", "2",
            "--warmup-epochs", "0.5", "--device", "cpu", "--amp", "off", "--workers", "0", "--seed", "3",
            "--deterministic", "--save-period", "1", "--project", str(project)]  # fmt: skip


def read(path: Path) -> dict | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None


def kill_mid_epoch(cmd: list[str], last: Path, timeout: float = 120.0) -> dict:
    """Start ``cmd``; SIGKILL it at the first mid-epoch checkpoint seen in ``last``; return that checkpoint.

    The run is paused (SIGSTOP) while ``last`` is read, so the checkpoint read is the one on disk when
    the run is killed. Any epoch will do: on a loaded machine the poller may miss all of the first
    epoch's mid-epoch checkpoints, so the run has several epochs to be caught in.
    """
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)
            ckpt = read(last) if last.exists() else None
            if ckpt is not None and 0 < ckpt["epoch_step"] < STEPS_PER_EPOCH:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return ckpt
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError(
        f"run ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()!r}"
    )


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    data, _ = generate(tmp_path / "data", SynthConfig(n=10, size=64, seed=1, max_objects=3), progress=False)
    project = tmp_path / "runs"
    ref = subprocess.run(
        cli(*common(str(data), project), "--name", "ref"), env=env(), capture_output=True, text=True
    )
    assert ref.returncode == 0, ref.stderr[-2000:]

    killed_at = kill_mid_epoch(
        cli(*common(str(data), project), "--name", "cut"), project / "cut/weights/last.pt"
    )
    assert killed_at["step"] < EPOCHS * STEPS_PER_EPOCH, "killed after the last step"

    resumed = subprocess.run(cli("--resume", str(project / "cut")), env=env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    where = [line for line in resumed.stderr.splitlines() if line.startswith("resumed")]
    assert where, resumed.stderr[-2000:]

    a, b = read(project / "ref/weights/last.pt"), read(project / "cut/weights/last.pt")
    assert a["step"] == b["step"] == EPOCHS * STEPS_PER_EPOCH
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), f"{name} differs after {where[0]}"
    for (k, sa), sb in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(
            sa["exp_avg_sq"], sb["exp_avg_sq"]
        ), k
