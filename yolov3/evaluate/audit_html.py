"""``audit.html``: the label audit (``yolov3.evaluate.audit``) as one self-contained page, drawn with
``error_html``'s pieces (its style, tables, JPEG previews and SVG boxes).

No network and no script: the counts per kind (all records and flagged ones), the top records as a
table, and a gallery of the ``gallery`` worst images (ranking order), each a JPEG data URI under an SVG
that draws, in the image's own pixels (xyxy):

- every label of the image as ``<rect class="gt">`` (white);
- one ``<rect class="issue" data-kind="KIND">`` per record of the image, coloured by kind: the label
  it is about, or for ``missing`` the proposed box;
- for ``bad_box`` the proposed box too, dashed, as ``<rect class="fix" data-kind="bad_box">``.

Each figure carries ``data-image`` (the image's index in the audit) and ``data-records`` (how many
records it draws), so a reader can count the boxes drawn against ``issues.jsonl``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yolov3.data.types import Sample
from yolov3.evaluate.audit import FLAG_SCORE, KINDS, LabelIssue
from yolov3.evaluate.error_html import CSS, html_table, jpeg_uri, svg_rect
from yolov3.files import atomic_writer

COLOURS = {"missing": "#1f77b4", "wrong_class": "#d62728", "bad_box": "#ff7f0e", "spurious": "#e377c2"}
AUDIT_CSS = "rect.issue,rect.fix{fill:none;stroke-width:2}rect.fix{stroke-dasharray:6 3}"
TOP_ROWS = 50  # records listed in the table


def figure(sample: Sample, records: Sequence[LabelIssue], names: Sequence[str]) -> str:
    """One gallery image: its labels, and each of its ``records`` (all of one image)."""
    data, w, h = jpeg_uri(sample.image)
    rects = [svg_rect(b, "gt", "label", None, f"label {names[int(c)]}")
             for b, c in zip(np.asarray(sample.boxes).reshape(-1, 4), sample.classes)]  # fmt: skip
    for r in records:
        title = f"{r.kind} {r.score:.2f}: {names[r.cls]} -> {r.fix['action']} {names[r.fix['cls']]}"
        rects.append(svg_rect(np.asarray(r.box), "issue", r.kind, COLOURS[r.kind], title))
        if r.kind == "bad_box":
            rects.append(svg_rect(np.asarray(r.fix["box"]), "fix", r.kind, COLOURS[r.kind], "proposed box"))
    svg = (f'<svg viewBox="0 0 {w} {h}"><image href="{data}" width="{w}" height="{h}" '
           f'preserveAspectRatio="none"/>{"".join(rects)}</svg>')  # fmt: skip
    worst = records[0]
    caption = f"{Path(sample.image).name}: {worst.kind} {worst.score:.2f}"
    return (f'<figure data-image="{worst.image}" data-records="{len(records)}">{svg}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def write_audit_html(records: Sequence[LabelIssue], samples: Sequence[Sample], names: Sequence[str],
                     path: str | os.PathLike, title: str = "Label audit",
                     gallery: int = 24) -> Path:  # fmt: skip
    """Write the page for ``records`` (``audit_labels``' ranking order) of ``samples`` to ``path``."""
    flagged = [r for r in records if r.score >= FLAG_SCORE]
    counts = [["records"] + [sum(r.kind == k for r in records) for k in KINDS],
              [f"flagged (score >= {FLAG_SCORE})"] + [sum(r.kind == k for r in flagged) for k in KINDS]]
    top = [[Path(r.path).name or r.image, r.kind, r.score, names[r.cls], r.fix["action"], names[r.fix["cls"]],
            ", ".join(f"{v:.0f}" for v in r.fix["box"])] for r in records[:TOP_ROWS]]  # fmt: skip
    by_image: dict[int, list[LabelIssue]] = {}
    for r in records:
        by_image.setdefault(r.image, []).append(r)
    figs = [figure(samples[i], rs, names) for i, rs in list(by_image.items())[:gallery]]
    key = "".join(f'<span><i style="background:{COLOURS[k]}"></i>{k}</span>' for k in KINDS)
    page = "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}{AUDIT_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Records by kind</h2>", html_table([""] + list(KINDS), counts, "kinds"),
        f"<h2>Top records (of {len(records)})</h2>",
        html_table(["image", "kind", "score", "label", "fix", "class", "box"], top, "records"),
        f"<h2>Worst images (up to {gallery})</h2>",
        f'<p class="key">{key}<span>white: labels; dashed: proposed box</span></p>',
        f'<div class="gallery" id="gallery">{"".join(figs) or "<p>none</p>"}</div></body></html>\n',
    ])  # fmt: skip
    with atomic_writer(path) as f:
        f.write(page.encode("utf-8"))
    return Path(path)
