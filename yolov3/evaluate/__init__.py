"""Scoring detections: VOC mAP (``voc``), COCO AP via pycocotools (``coco``), curves and the confusion
matrix (``curves``), the model-running evaluator (``evaluator``) and its PNG plots (``plots``)."""
