"""The README can't rot: every `yolov3` command it shows parses with the real CLI, the walkthrough
block runs end to end at a smoke size, and its Python snippets run against the walkthrough's output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from yolov3.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
MAKEFILE = README.with_name("Makefile")

# The walkthrough's sizes, shrunk so it runs in seconds. Each one must still be found in the README.
SMOKE = {
    "--n 400": "--n 12",
    "--seed 0": "--seed 0 --size 96",
    "--img-size 256": "--img-size 64",
    "--epochs 30": "--epochs 1",
    "--batch 16": "--batch 4",
}


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def commands(block: str) -> list[str]:
    """Shell lines of a block, comments dropped."""
    lines = [line.split(" #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def yolov3_argv(line: str) -> list[str] | None:
    """``yolov3 ...`` or ``torchrun ... -m yolov3 ...`` -> the CLI's argv; None for other lines."""
    words = shlex.split(line)
    if words[0] == "yolov3":
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1] == "yolov3":
        return words[words.index("-m") + 2 :]
    return None


def all_commands() -> list[str]:
    return [line for block in blocks("bash") for line in commands(block)]


def test_readme_shows_the_two_commands_and_make_targets_exist():
    targets = set(re.findall(r"^([a-z]+):", MAKEFILE.read_text(), flags=re.M))
    made = {line.split()[1] for line in all_commands() if line.startswith("make ")}
    assert {"demo", "test"} <= made <= targets


@pytest.mark.parametrize("line", [c for c in all_commands() if yolov3_argv(c) is not None])
def test_every_readme_command_parses(line):
    parser = build_parser()
    try:
        parser.parse_args(yolov3_argv(line))
    except SystemExit as exc:  # argparse exits on an unknown option or a bad value
        pytest.fail(f"README command does not parse ({exc.code}): {line}")


def walkthrough() -> list[str]:
    (block,) = [b for b in blocks("bash") if b.startswith("# walkthrough")]
    lines = [line for line in commands(block) if not line.startswith("source ")]
    text = "\n".join(lines)
    for big, small in SMOKE.items():
        assert big in text, f"the walkthrough no longer has {big!r}: update SMOKE"
        text = text.replace(big, small)
    return text.splitlines()


@pytest.mark.slow
def test_walkthrough_runs_and_python_snippets_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line in walkthrough():
        assert main(yolov3_argv(line)) == 0, line
    assert Path("runs/shapes/weights/best.pt").is_file()
    assert list(Path("runs/detect/onnx").glob("*.jpg"))
    assert list(Path("runs/shapes/darknet").glob("*.weights"))
    # The detection snippet, as printed, on the walkthrough's weights (training ones are skipped: they
    # would train for 30 epochs; `yolov3.train` is the function the CLI above just ran).
    for snippet in blocks("python"):
        if "detector.predict" in snippet:
            exec(compile(snippet, "README.md", "exec"), {})
            assert Path("out.jpg").is_file()
