"""Scoring detections: VOC mAP (``voc``), COCO AP via pycocotools / faster-coco-eval (``coco``), curves
and the confusion matrix (``curves``), the model-running evaluator (``evaluator``), its PNG plots
(``plots``) and text report (``report``), ``yolov3.val`` on a weights file (``api``), and TIDE error
analysis: the cause of each false positive / negative and the mAP each cause costs (``errors``)."""
