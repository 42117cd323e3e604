"""``analysis.html``: the TIDE analysis (``yolov3.evaluate.error_report``) as one self-contained page.

No network and no script: inline CSS, the summary tables (base mAP, counts and dAP per kind, counts by
object size, by objects per image, per class with precision / recall / F1 at the best-F1 threshold),
a bar chart of the dAP per kind (inline SVG), and one gallery per kind: the images with the most errors
of that kind (up to ``gallery`` each, most first, ties by image order), each a JPEG data URI under an
SVG that draws, in the image's own pixels (xyxy),

- every detection of the gallery's kind in that image (none for ``miss``), coloured by kind, as
  ``<rect class="det" data-kind="KIND">``;
- every ground-truth box of the image (ignored boxes left out, as in the table) as
  ``<rect class="gt" data-kind="tp|miss|pointed">`` (a missed box dashed).

Each figure carries ``data-kind`` and ``data-image`` (the image's index in the analysis), so a reader
can count the boxes drawn against ``ErrorAnalysis.table``.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.images import read_image
from yolov3.evaluate.error_report import COUNT_KINDS, ErrorAnalysis
from yolov3.evaluate.errors import KINDS, MISS, TP, ErrorTable
from yolov3.files import atomic_writer

COLOURS = {"tp": "#2ca02c", "cls": "#d62728", "loc": "#ff7f0e", "both": "#9467bd", "dupe": "#17becf",
           "bkg": "#e377c2", "miss": "#1f77b4", "false_pos": "#7f7f7f", "false_neg": "#7f7f7f"}  # fmt: skip
GT_KINDS = {TP: "tp", MISS: "miss", -2: "pointed"}
MAX_SIDE = 480  # gallery JPEGs are scaled down to this longest side; boxes stay in original pixels

CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f2f2f2}
.gallery{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:280px}
figure svg{width:280px;height:auto;background:#444}figcaption{font-size:12px;word-break:break-all}
rect.det,rect.gt{fill:none;stroke-width:2}rect.gt{stroke:#fff}rect.gt[data-kind=miss]{stroke-dasharray:6 3}
.key span{display:inline-block;margin-right:12px}.key i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-1px}
"""


def _cell(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.2f}"
    return html.escape(str(x))


def html_table(head: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    """An HTML table with ``head`` and one ``<tr>`` per row."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def summary_tables(summary: dict[str, Any]) -> str:
    """The overview, the counts / dAP per kind, the counts by size and crowdedness, and per class."""
    kinds = list(COUNT_KINDS)
    over = [["images", summary["images"]], ["ground-truth boxes", summary["instances"]],
            ["detections", summary["detections"]],
            [f"mAP@{summary['pos_threshold']:g}", summary["map"]]]  # fmt: skip
    if "map50_95" in summary:
        over.append(["mAP@.5:.95", summary["map50_95"]])
    dap = summary["dap"]
    per_kind = [["count"] + [summary["counts"][k] for k in kinds], ["dAP", ""] + [dap[k] for k in KINDS]]
    size = [[name] + [c[k] for k in kinds] for name, c in summary["by_size"].items()]
    crowd = [[f"{name} obj"] + [c[k] for k in kinds] for name, c in summary["by_crowd"].items()]
    stats = ["precision", "recall", "f1", "conf"]
    per_class = [[name, row["instances"]] + [row[k] for k in kinds] + [row[k] for k in stats]
                 for name, row in summary["per_class"].items()]  # fmt: skip
    return "".join([
        "<h2>Summary</h2>", html_table(["", "value"], over, "overview"),
        "<h2>Errors by kind</h2>", html_table([""] + kinds, per_kind, "kinds"),
        f"<p>false positives cost {dap['false_pos']:.2f} mAP, false negatives {dap['false_neg']:.2f}</p>",
        "<h2>By object size</h2>", html_table(["size"] + kinds, size, "by-size"),
        "<h2>By objects per image</h2>", html_table(["image has"] + kinds, crowd, "by-crowd"),
        "<h2>Per class (best-F1 threshold)</h2>",
        html_table(["class", "instances"] + kinds + ["P", "R", "F1", "conf"], per_class, "per-class"),
    ])  # fmt: skip


def dap_chart(dap: dict[str, float], width: int = 520, bar: int = 22) -> str:
    """A horizontal bar chart (inline SVG) of the dAP of every kind, the two special ones last."""
    names = list(KINDS) + ["false_pos", "false_neg"]
    top = max([abs(dap[k]) for k in names] + [1e-9])
    left, right = 80, 60
    rows = []
    for i, k in enumerate(names):
        y, w = i * (bar + 6), (width - left - right) * abs(dap[k]) / top
        ty = f"{y + bar * 0.7:.0f}"
        rows.append(f'<text x="{left - 6}" y="{ty}" text-anchor="end">{k}</text>'
                    f'<rect class="bar" data-kind="{k}" x="{left}" y="{y}" width="{w:.1f}" height="{bar}" '
                    f'fill="{COLOURS[k]}"/>'
                    f'<text x="{left + w + 4:.1f}" y="{ty}">{dap[k]:.2f}</text>')  # fmt: skip
    height = len(names) * (bar + 6)
    return (f'<svg id="dap-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-size="12">{"".join(rows)}</svg>')  # fmt: skip


def worst_images(table: ErrorTable, kind: int, n: int) -> list[int]:
    """Up to ``n`` image indices with the most errors of ``kind`` (at least one), most first."""
    t = table
    images = t.gt_image[t.gt_kind == MISS] if kind == MISS else t.det_image[t.det_kind == kind]
    counts = np.bincount(images.astype(np.int64)) if len(images) else np.zeros(0, np.int64)
    order = np.argsort(-counts, kind="stable")
    return [int(i) for i in order[:n] if counts[i] > 0]


def jpeg_uri(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(data URI, width, height)``: the image (original size) as a JPEG at most ``MAX_SIDE`` wide."""
    rgb = read_image(path)
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError(f"{path}: could not encode a JPEG preview")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii"), w, h


def svg_rect(box: np.ndarray, cls: str, kind: str, colour: str | None, title: str) -> str:
    """An SVG rectangle for one xyxy box (an inverted side drawn as 0)."""
    x, y, w, h = (float(v) for v in box_convert(np.asarray(box, np.float64).reshape(1, 4), "xyxy", "xywh")[0])
    stroke = f' stroke="{colour}"' if colour else ""
    return (f'<rect class="{cls}" data-kind="{kind}" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
            f'height="{max(h, 0):.1f}"{stroke} vector-effect="non-scaling-stroke">'
            f"<title>{html.escape(title)}</title></rect>")  # fmt: skip


def figure(table: ErrorTable, names: Sequence[str], image: int, kind: str, path: str, uri: tuple) -> str:
    """One gallery image: the detections of ``kind`` in ``image`` and every ground-truth box of it."""
    data, w, h = uri
    rects = []
    for j in np.flatnonzero(table.gt_image == image):
        gk = GT_KINDS.get(int(table.gt_kind[j]), "tp")
        title = f"ground truth {names[table.gt_class[j]]} ({gk})"
        rects.append(svg_rect(table.gt_box[j], "gt", gk, None, title))
    if kind != "miss":
        for j in np.flatnonzero((table.det_image == image) & (table.det_kind == KINDS[kind])):
            title = f"{kind}: {names[table.det_class[j]]} {table.det_score[j]:.3f}"
            rects.append(svg_rect(table.det_box[j], "det", kind, COLOURS[kind], title))
    svg = (f'<svg viewBox="0 0 {w} {h}"><image href="{data}" width="{w}" height="{h}" '
           f'preserveAspectRatio="none"/>{"".join(rects)}</svg>')  # fmt: skip
    return (f'<figure data-kind="{kind}" data-image="{image}">{svg}'
            f"<figcaption>{html.escape(Path(path).name)}</figcaption></figure>")  # fmt: skip


def galleries(analysis: ErrorAnalysis, images: Sequence[str], n: int) -> str:
    """One section per kind with its ``worst_images``; each image encoded once."""
    cache: dict[int, tuple] = {}
    out = []
    key = "".join(f'<span><i style="background:{COLOURS[k]}"></i>{k}</span>' for k in KINDS)
    out.append(f'<p class="key">{key}<span>white: ground truth (dashed: missed)</span></p>')
    for kind, k in KINDS.items():
        shown = worst_images(analysis.table, k, n)
        figs = []
        for i in shown:
            if i not in cache:
                cache[i] = jpeg_uri(images[i])
            figs.append(figure(analysis.table, analysis.names, i, kind, images[i], cache[i]))
        body = "".join(figs) or "<p>none</p>"
        out.append(f'<h3>{kind}</h3><div class="gallery" id="gallery-{kind}">{body}</div>')
    return "".join(out)


def write_error_html(analysis: ErrorAnalysis, images: Sequence[str | os.PathLike], path: str | os.PathLike,
                     gallery: int = 8) -> Path:  # fmt: skip
    """Write the page for ``analysis`` to ``path``; ``images[i]``: the file of image ``i`` of the table
    (``gallery``: images per kind, 0 for none)."""
    s = analysis.summary
    title = f"TIDE error analysis: {s.get('weights', '')} on {s.get('data', '')} ({s.get('split', '')})"
    page = "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>", summary_tables(s),
        "<h2>dAP per error kind</h2>", dap_chart(s["dap"]),
        f"<h2>Worst images per kind (up to {gallery})</h2>",
        galleries(analysis, [str(p) for p in images], gallery), "</body></html>\n",
    ])  # fmt: skip
    with atomic_writer(path) as f:
        f.write(page.encode("utf-8"))
    return Path(path)
