"""Scores of a model's outputs against an evaluation set (and of the board's against the host's),
computed with the field's standard code: pycocotools for detection and keypoints, plain NumPy otherwise."""
