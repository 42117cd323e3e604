"""Large pictures, small objects (issue 25): sliced inference against whole-picture inference, native
resolution and SAHI, with the peak memory of each.

The set: ``benchmarks/large_pictures.py`` (1,920-4,000 px wide pictures of the demo's five object
kinds, radius 7-22 px), scored by ``evaluate_detections`` (mAP@0.5, VOC all-point, as ``yolov3 val``)
at the mAP score threshold (0.001) with ``max_det`` 5,000 per picture. The model: the demo's
YOLOv3-tiny trained on 192 px pictures (``runs/demo/train/weights/best.pt``, ``make demo``; or
``--weights``). Each mode runs in its own child process (``--child``), which reads the pictures, loads
the model, warms it up and then times the detection of every picture; its peak RSS is the child's
own ``VmHWM`` at its end (``peak_mb``):

- ``whole``: each picture letterboxed to the model's size (192);
- ``sliced``: ``tile`` = the model's size, overlap 0.2, tiles in batches of 8 (``TILE_BATCH``), NMS merge;
- ``native``: each picture whole at its own size rounded up to a multiple of 32 (fully convolutional);
- ``sahi``: SAHI's ``get_sliced_prediction`` (same tile, overlap, score threshold; no extra
  whole-picture pass, as ours; SAHI's default GREEDYNMM / IOS 0.5 merge) through ``SahiAdapter``, a
  ``DetectionModel`` that runs our ``Detector`` on each slice SAHI hands it; alternated with ``sliced``
  ``--rounds`` times, best wall time of each;
- ``int8``: ``sliced`` on the OpenVINO INT8 export (``yolov3 export --format openvino --int8``,
  calibrated on the demo data; made once into ``.cache/bench-tiles``);
- ``big`` / ``big-whole``: ``yolov3 detect`` on one 10,000 x 10,000 picture, ``--tile`` vs whole
  (letterboxed to the model's size): peak RSS. Whole at native size there is not run: the ``native``
  rows give its memory per pixel.

Usage: ``python benchmarks/bench_tiles.py [--weights W] [--per-size 1] [--rounds 2] [--skip-int8]``.
Prints JSON lines (``benchmarks/run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from large_pictures import draw_large, write_set  # noqa: E402

from yolov3.config import InferConfig  # noqa: E402

CACHE = ROOT / ".cache/bench-tiles"
WEIGHTS = ROOT / "runs/demo/train/weights/best.pt"
DEMO_DATA = ROOT / ".cache/yolov3-demo/synth-192px-7200-seed0/data.yaml"
OVERLAP, BATCH, MAX_DET = 0.2, 8, 5000


def settings_for(mode: str, tile: int) -> InferConfig:
    base = InferConfig.for_map(max_det=MAX_DET)
    return base.replace(tile=tile, tile_overlap=OVERLAP) if mode in ("sliced", "int8") else base


def read_pictures(data: Path) -> tuple[list[str], list[np.ndarray]]:
    paths = sorted(str(p) for p in (data.parent / "images/val").glob("*.png"))
    return paths, [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]


def child(mode: str, weights: str, data: Path, out: Path, tile: int) -> None:
    """One mode over the set: per picture boxes, scores and classes, and the seconds spent detecting."""
    from yolov3.infer.detector import Detector

    paths, pictures = read_pictures(data)
    settings = settings_for(mode, tile)
    det = Detector.load(weights, device="cpu", batch_size=BATCH, settings=settings)
    det.warmup()
    found, wall = [], 0.0
    for p, im in zip(paths, pictures):
        if mode == "native":  # a detector per input size (each fixes its own), loaded untimed
            side = -(-max(im.shape[:2]) // 32) * 32
            det = Detector.load(weights, device="cpu", batch_size=1, settings=settings.replace(img_size=side))
        t0 = time.perf_counter()
        d = sahi_predict(det, im, p, tile) if mode == "sahi" else det.predict_arrays([im], [p])[0]
        wall += time.perf_counter() - t0
        found.append(
            {"boxes": d.boxes.tolist(), "scores": d.scores.tolist(), "classes": d.class_ids.tolist()}
        )
    out.write_text(json.dumps({"wall": wall, "found": found, "rss": peak_mb()}))


def sahi_predict(det, image: np.ndarray, path: str, tile: int):  # noqa: ANN001, ANN201
    """SAHI's sliced prediction of one picture with ``det`` as its model, as our ``Detections``."""
    from sahi.predict import get_sliced_prediction

    from yolov3.infer.results import Detections

    model = SahiAdapter(det)
    res = get_sliced_prediction(
        image,
        model,
        slice_height=tile,
        slice_width=tile,
        overlap_height_ratio=OVERLAP,
        overlap_width_ratio=OVERLAP,
        perform_standard_pred=False,
        verbose=0,
        auto_slice_resolution=False,
    )
    preds = res.object_prediction_list
    boxes = np.asarray([p.bbox.to_xyxy() for p in preds], np.float32).reshape(-1, 4)
    scores = np.asarray([p.score.value for p in preds], np.float32)
    ids = np.asarray([p.category.id for p in preds], np.int64)
    h, w = image.shape[:2]
    return Detections(boxes, scores, ids, det.names, path, w, h, None, {})


def sahi_adapter_class():  # noqa: ANN201
    """``SahiAdapter``: SAHI's ``DetectionModel`` over a loaded ``Detector`` (made on first use, so the
    parent process never imports SAHI)."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction

    class Adapter(DetectionModel):
        def __init__(self, detector) -> None:  # noqa: ANN001
            self.detector = detector
            mapping = {str(i): n for i, n in enumerate(detector.names)}
            super().__init__(
                model=detector,
                confidence_threshold=detector.settings.conf_threshold,
                category_mapping=mapping,
                device="cpu",
            )

        def set_model(self, model, **kwargs) -> None:  # noqa: ANN001, ANN003
            self.model = model

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self.detector.predict_arrays([image])
            self._original_shapes = [image.shape]

        def _create_object_prediction_list_from_original_predictions(
            self,
            shift_amount_list=[[0, 0]],  # noqa: B006
            full_shape_list=None,
        ) -> None:  # noqa: ANN001
            from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list

            shifts, shapes = fix_shift_amount_list(shift_amount_list), fix_full_shape_list(full_shape_list)
            per_image = []
            for k, d in enumerate(self._original_predictions):
                full = None if shapes is None else [int(x) for x in shapes[k]]
                keep = d.scores >= self.confidence_threshold
                per_image.append(
                    [
                        ObjectPrediction(
                            b.tolist(),
                            int(c),
                            self.detector.names[int(c)],
                            score=float(s),
                            shift_amount=[int(x) for x in shifts[k]],
                            full_shape=full,
                        )
                        for b, s, c in zip(d.boxes[keep], d.scores[keep], d.class_ids[keep])
                    ]
                )
            self._object_prediction_list_per_image = per_image

    return Adapter


def SahiAdapter(detector):  # noqa: ANN001, ANN201, N802
    return sahi_adapter_class()(detector)


def peak_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM``, which ``execve`` resets (``ru_maxrss`` keeps the
    peak of the process that forked it, here the parent, which holds every mode's boxes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(args: list[str]) -> int:
    """Run ``args`` (this script's arguments) as a child process; its exit status."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, __file__, *args], env=env, stdout=subprocess.DEVNULL).returncode


def cli_child(peak_file: str, args: list[str]) -> int:
    """``yolov3 ARGS`` in this process, then its peak RSS into ``peak_file``."""
    from yolov3.cli import main as yolov3_main

    rc = yolov3_main(args)
    Path(peak_file).write_text(json.dumps({"rss": peak_mb()}))
    return rc


def measure(mode: str, weights: str, data: Path, tile: int, work: Path) -> dict:
    """One child run of ``mode``: mAP@0.5, wall seconds, peak RSS MB."""
    from yolov3.data.dataset_config import load_dataset
    from yolov3.evaluate.evaluator import evaluate_detections
    from yolov3.infer.results import Detections

    out = work / f"{mode}.json"
    rc = run_child(
        [
            "--child",
            mode,
            "--weights",
            weights,
            "--data",
            str(data),
            "--json",
            str(out),
            "--tile",
            str(tile),
        ]
    )
    if rc:
        raise SystemExit(f"bench_tiles: the {mode} child failed (exit {rc})")
    got = json.loads(out.read_text())
    spec = load_dataset(str(data))
    samples = sorted(spec.val, key=lambda s: str(s.image))
    names = list(spec.names)
    dets = [
        Detections(
            np.asarray(f["boxes"], np.float32).reshape(-1, 4),
            np.asarray(f["scores"], np.float32),
            np.asarray(f["classes"], np.int64),
            names,
            str(s.image),
            s.width,
            s.height,
            None,
            {},
        )
        for f, s in zip(got["found"], samples)
    ]
    map50 = evaluate_detections(dets, samples, names, coco=False).summary["map50"]
    return {"map50": round(map50, 3), "wall": round(got["wall"], 2), "rss": round(got["rss"])}


def int8_model(weights: str, tile: int) -> Path:
    """The OpenVINO INT8 export of ``weights`` at the tile size (calibrated on the demo data), made once."""
    xml = CACHE / f"int8-{tile}" / "best_int8.xml"
    if not xml.exists():
        xml.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "yolov3",
            "export",
            "--weights",
            weights,
            "--format",
            "openvino",
            "--int8",
            "--data",
            str(DEMO_DATA),
            "--img-size",
            str(tile),
            "--out",
            str(xml),
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return xml


def big_picture(work: Path) -> Path:
    """A 10,000 x 10,000 JPEG: a 2,500 px picture of the set's kind repeated 4 x 4."""
    path = CACHE / "big-10000.jpg"
    if not path.exists():
        img, _, _ = draw_large(2500, 2500, 7)
        cv2.imwrite(
            str(path),
            cv2.cvtColor(np.tile(img, (4, 4, 1)), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
    return path


def big_rows(weights: str, tile: int, work: Path) -> list[dict]:
    """``yolov3 detect`` on the 10,000 px picture, sliced and whole: wall seconds and peak RSS."""
    pic, rows = big_picture(work), []
    for name, extra in (("sliced", ["--tile", str(tile)]), ("whole", [])):
        t0 = time.perf_counter()
        peak = work / f"big-{name}.json"
        rc = run_child(
            [
                "--cli-peak",
                str(peak),
                "detect",
                str(pic),
                "--weights",
                weights,
                "--no-save",
                "--max-det",
                str(MAX_DET),
                "--out",
                str(work / f"big-{name}"),
                *extra,
            ]
        )
        if rc:
            raise SystemExit(f"bench_tiles: detect on the 10,000 px picture ({name}) failed (exit {rc})")
        rss = json.loads(peak.read_text())["rss"]
        rows.append({"mode": name, "rss": round(rss), "wall": round(time.perf_counter() - t0, 1)})
    return rows


def alternated(weights: str, data: Path, tile: int, work: Path, rounds: int) -> tuple[dict, dict]:
    """``sliced`` and ``sahi`` alternated ``rounds`` times: each side's run with the best wall time."""
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for mode in ("sliced", "sahi"):
            r = measure(mode, weights, data, tile, work)
            if mode not in best or r["wall"] < best[mode]["wall"]:
                best[mode] = r
    return best["sliced"], best["sahi"]


def row(what: str, ours: float, anchor: float | None, unit: str, target: str, note: str) -> None:
    ratio = round(ours / anchor, 3) if anchor else None
    out = {
        "what": what,
        "ours": ours,
        "anchor": anchor,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "note": note,
    }
    print(json.dumps(out), flush=True)


def report(r: dict, pictures: str, big: list[dict], rounds: int) -> None:
    whole, sliced, native, sahi = r["whole"], r["sliced"], r["native"], r["sahi"]
    row(
        "sliced mAP@0.5 minus whole-picture mAP@0.5 at the model's size",
        round(sliced["map50"] - whole["map50"], 3),
        None,
        "mAP",
        ">= 0.3",
        f"{pictures}; sliced {sliced['map50']}, whole {whole['map50']}",
    )
    row(
        "sliced mAP@0.5 minus whole at native resolution",
        round(sliced["map50"] - native["map50"], 3),
        None,
        "mAP",
        ">= -0.02",
        f"sliced {sliced['map50']} at {sliced['rss']} MB peak RSS, native {native['map50']} at "
        f"{native['rss']} MB; whole at 192: {whole['rss']} MB",
    )
    row("sliced peak RSS", sliced["rss"], None, "MB", "<= 1500", f"{pictures}; the child's VmHWM")
    row(
        "sliced mAP@0.5 minus SAHI's",
        round(sliced["map50"] - sahi["map50"], 3),
        None,
        "mAP",
        ">= -0.01",
        f"ours {sliced['map50']}, SAHI get_sliced_prediction {sahi['map50']}",
    )
    row(
        "sliced wall time vs SAHI's",
        sliced["wall"],
        sahi["wall"],
        "s",
        "<= 0.5",
        f"{pictures}; best of {rounds}, alternated, model load excluded; SAHI peak RSS {sahi['rss']} MB",
    )
    if "int8" in r:
        q = r["int8"]
        row(
            "sliced, OpenVINO INT8: mAP@0.5 and wall vs float32 PyTorch sliced",
            q["wall"],
            sliced["wall"],
            "s",
            "",
            f"INT8 mAP@0.5 {q['map50']} (float32 {sliced['map50']}), peak RSS {q['rss']} MB",
        )
    s, w = big
    row(
        "10,000 x 10,000 picture: yolov3 detect --tile peak RSS vs whole at the model's size",
        s["rss"],
        w["rss"],
        "MB",
        "",
        f"sliced {s['wall']} s, whole {w['wall']} s (process wall, load included)",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--cli-peak"]:
        raise SystemExit(cli_child(argv[1], argv[2:]))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(WEIGHTS))
    p.add_argument("--per-size", type=int, default=1, help="pictures of each size (4 sizes)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tile", type=int, default=192, help="tile side (default: the demo model's size)")
    p.add_argument("--skip-int8", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a.child, a.weights, a.data, a.json, a.tile)
    if not Path(a.weights).exists():
        raise SystemExit(f"bench_tiles: no model at {a.weights} (make demo, or --weights)")
    CACHE.mkdir(parents=True, exist_ok=True)
    data = write_set(CACHE / f"set-{a.per_size}", per_size=a.per_size)
    n = len(list((data.parent / "images/val").glob("*.png")))
    pictures = f"{n} pictures 1920x1080-4000x3000, tile {a.tile}, overlap {OVERLAP}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        r = {m: measure(m, a.weights, data, a.tile, work) for m in ("whole", "native")}
        r["sliced"], r["sahi"] = alternated(a.weights, data, a.tile, work, a.rounds)
        if not a.skip_int8:
            r["int8"] = measure("int8", str(int8_model(a.weights, a.tile)), data, a.tile, work)
        print(json.dumps({"raw": r}), file=sys.stderr)
        report(r, pictures, big_rows(a.weights, a.tile, work), a.rounds)


if __name__ == "__main__":
    main()
