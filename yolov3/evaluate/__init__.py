"""Scoring detections: VOC mAP (``voc``), COCO AP via pycocotools / faster-coco-eval (``coco``), curves
and the confusion matrix (``curves``), the model-running evaluator (``evaluator``), its PNG plots
(``plots``) and text report (``report``), and ``yolov3.val`` on a weights file (``api``)."""
