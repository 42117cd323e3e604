"""Applications: each a room of its own above the inference core (``yolov3.infer``) and
``yolov3.evaluate``, composing them; nothing below imports a room here.

``detect/`` (``yolov3 detect``: a Detector over a source with the result files written, one process
or ``torchrun`` shards, resumable), ``track/`` (``yolov3 track``: ByteTrack on the detector's results,
written with ``detect``'s writers), ``serve/`` (``yolov3 serve``: a Detector behind HTTP) and
``ray_data.py`` (``RayDetector`` for Ray Data). A room imports the core, ``evaluate`` and the
foundation below them; the one room another builds on is ``detect`` (its writers and job files, which
``track`` reuses). ``python -m yolov3.tools.imports`` checks both.
"""
