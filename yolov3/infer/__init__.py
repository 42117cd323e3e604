"""Inference: everything between a picture and its detections.

``backends`` (what runs the network: PyTorch, TorchScript, ONNX Runtime, OpenCV DNN), ``detector``
(letterbox -> backend -> ``postprocess`` in batches: the Python API), ``results`` (``Detections``, the
one per-image result type), ``sources`` (images, folders, globs, videos, webcams), ``runner`` (a
detector over a source with the result files written: ``yolov3 detect``) and ``draw``. Nothing here
is imported by training; ``yolov3.load`` / ``yolov3.detect`` are the entry points.
"""
