"""Multi-object tracking on the detector's results: ``bytetrack.py`` (the association), ``kalman.py``
(its motion model), ``results.py`` (``TrackedDetections``), ``runner.py`` (``yolov3.track`` and the
files ``yolov3 track`` writes)."""
