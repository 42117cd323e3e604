"""Multi-object tracking on the detector's results: ``bytetrack.py`` (the association), ``kalman.py``
(its motion model), ``results.py`` (``TrackedDetections``), ``sequences.py`` (what is one sequence:
MOTChallenge folders, videos, image folders, and their names), ``writers.py`` (the files of a run),
``runner.py`` (``yolov3.track``, ``run_track``, ``evaluate_run``: what ``yolov3 track [--eval]`` runs)."""
