"""The inference core: everything between a picture and its detections.

``backends`` (what runs the network: PyTorch, TorchScript, ONNX Runtime, OpenCV DNN, OpenVINO),
``detector`` (letterbox -> backend -> ``postprocess`` in batches: the Python API), ``results``
(``Detections``, the one per-image result type), ``loop`` (``detect_batches``: the one image loop the
applications iterate), ``frame`` (``Frame``), ``sources`` (images, folders, globs, videos, URLs),
``stream`` (the one reader of webcams and stream URLs), ``video`` (annotated video files) and
``draw``. It imports nothing above it: the applications that compose it (detect jobs, tracking,
serving, Ray) live in ``yolov3.apps``. Nothing here is imported by training; ``yolov3.load`` is the
entry point.
"""
