"""``yolov3 detect``: ``runner.py`` (``yolov3.detect``: a Detector over a source, every result to the
writers: annotated media, ``results.jsonl``, COCO results, YOLO labels) and ``shard.py`` (one job over
``torchrun`` processes, part files, the manifest, the merge, resume)."""
