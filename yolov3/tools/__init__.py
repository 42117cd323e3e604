"""Checks on the code base itself, run as ``python -m yolov3.tools.<name>``: ``imports`` (every import
runs from a higher layer down to a lower one). They read source files only and import no torch."""
