"""``yolov3 track SOURCE --weights W``: follow objects across the frames of a video, an image sequence,
a stream URL (rtsp://, http(s)://) or a webcam, with ByteTrack over the model's detections.

A MOTChallenge folder (``<name>/img1/`` sequences, as ``yolov3 data synth --video`` writes them; one
such sequence; or its ``img1``) is tracked sequence by sequence, each named after its folder, at its
seqinfo.ini frame rate; the rest of such a root (``videos/``) is not tracked.

Writes into ``--out`` (default ``runs/track/exp``, numbered when it exists) what
``yolov3.apps.track.runner`` describes: annotated videos / images with track ids and trails (a
MOTChallenge sequence's frames in ``<name>/``), ``results.jsonl`` (a ``track_id`` per box),
``coco_results.json`` and ``mot/<sequence>.txt`` (MOTChallenge). ``--eval`` then scores each sequence
against its ``gt/gt.txt`` (HOTA, DetA, AssA, MOTA, MOTP, IDF1, ID switches, FP, FN; rows less visible
than ``--eval-min-visibility`` are ignored: see ``yolov3.evaluate.mot``), prints a table and writes
``mot_metrics.json``. A live source keeps only its newest frame unless ``--stream-buffer``,
reconnects when it drops, and gives up after ``--retries`` failed reconnects; Ctrl-C stops with the
files finalised. Unless ``--conf-threshold`` is given, the detector keeps boxes down to
``--low-threshold``.
"""

from __future__ import annotations

import argparse
import sys

from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import TRACKERS, InferConfig, TrackConfig
from yolov3.files import next_run_dir

MIN_VISIBILITY = 0.3  # yolov3.evaluate.mot.MIN_VISIBILITY, kept here so that --help loads no scorer

# TrackConfig field -> (argparse keywords, help); the option is the field's name with dashes
_TRACK_OPTIONS = {
    "tracker": ({"choices": TRACKERS}, "association method"),
    "high_threshold": ({"type": float}, "detections scoring this or more are matched first"),
    "low_threshold": ({"type": float}, "detections from this score up rescue unmatched tracks"),
    "new_track_threshold": ({"type": float}, "an unmatched detection scoring this or more starts a track"),
    "match_iou": ({"type": float}, "least IoU of a first-stage match"),
    "low_match_iou": ({"type": float}, "least IoU of a low-score match"),
    "unconfirmed_match_iou": ({"type": float}, "least IoU to confirm a new track"),
    "track_buffer": ({"type": int}, "frames (at 30 fps) a lost track is kept for"),
    "class_aware": ({"action": "store_true", "default": None}, "match only detections of the track's class"),
    "trail": ({"type": int}, "centres drawn behind each track"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help=VERBS["track"],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        help="video file, image folder / glob, MOTChallenge folder, stream URL (rtsp://...) or webcam index",
    )
    add_model_options(p)
    add_infer_options(p, InferConfig(conf_threshold=TrackConfig().low_threshold))
    g = p.add_argument_group("tracker")
    defaults = TrackConfig()
    for name, (kwargs, text) in _TRACK_OPTIONS.items():
        g.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            help=f"{text} (default {getattr(defaults, name)})",
            **kwargs,
        )
    s = p.add_argument_group("live sources")
    s.add_argument("--stream-buffer", action="store_true", help="keep every frame (default: only the newest)")
    s.add_argument("--open-timeout", type=float, default=10.0, help="seconds to open a stream (default 10)")
    s.add_argument("--retries", type=int, default=5, help="reconnects in a row before giving up (default 5)")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="output folder (default runs/track/exp, numbered)")
    o.add_argument("--no-save", action="store_true", help="do not write annotated images / videos")
    o.add_argument("--view-img", action="store_true", help="show results in a window (needs a GUI OpenCV)")
    o.add_argument("--line-width", type=int, help="box line width in pixels (default: from image size)")
    e = p.add_argument_group("scoring (MOTChallenge sequences with gt/gt.txt)")
    e.add_argument(
        "--eval", dest="evaluate", action="store_true",
        help="score the run (HOTA, MOTA, IDF1...) per sequence into OUT/mot_metrics.json",
    )  # fmt: skip
    e.add_argument(
        "--eval-min-visibility", type=float, default=MIN_VISIBILITY, metavar="V",
        help=f"ground truth less visible than V is ignored (default {MIN_VISIBILITY})",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.apps.detect.runner import SaveOptions
    from yolov3.apps.track.runner import run_track

    given = {name: getattr(args, name) for name in _TRACK_OPTIONS}
    track_settings = TrackConfig().replace(**given)
    settings = infer_settings(args, InferConfig(conf_threshold=track_settings.low_threshold))
    save = SaveOptions(media=not args.no_save, view=args.view_img, line_width=args.line_width)
    out = args.out or next_run_dir("runs/track", create=False)
    report = run_track(
        args.source,
        args.weights,
        out,
        cfg=args.cfg,
        names=args.names,
        device=args.device,
        backend=args.backend,
        settings=settings,
        track_settings=track_settings,
        stream_buffer=args.stream_buffer,
        save=save,
        open_timeout=args.open_timeout,
        retries=args.retries,
        backend_options=backend_options(args),
        evaluate=args.evaluate,
        min_visibility=args.eval_min_visibility,
    )
    speed = ", ".join(f"{k} {v:.1f} ms" for k, v in report.speed_ms.items() if k != "read")
    if report.frames:
        print(f"Speed per frame: {speed}")
    dropped = f", {report.dropped} live frames dropped for newer ones" if report.dropped else ""
    seqs = f" in {len(report.sequences)} sequences" if len(report.sequences) > 1 else ""
    print(
        f"{report.frames} frames{seqs}, {report.tracks} tracks, {report.skipped} skipped{dropped}. "
        f"Results saved to {report.out or out}"
    )
    if report.evaluation is not None:
        print(report.evaluation.table())
        print(f"Scores saved to {report.out or out}/mot_metrics.json")
    if report.interrupted:
        unscored = " (not scored)" if args.evaluate else ""
        print(f"yolov3 track: interrupted; the files written so far are complete{unscored}", file=sys.stderr)
        return 130
    if report.error:
        print(f"yolov3 track: error: {report.error}", file=sys.stderr)
        return 1
    if not report.frames:
        print("yolov3 track: error: nothing could be read from the source", file=sys.stderr)
        return 1
    return 0
