"""Evaluation sets in the formats labelling tools export (COCO JSON, YOLO, mask PNGs, npz), read and
checked on the host into one dataclass per kind of task; `open_eval` in registry.py picks the reader."""
