"""make perf's detector scenes hold what their names promise: the photo's 100 boxes over the
threshold come down to its 20 objects through the agent's own decoding, the crowd's to the cap."""
from __future__ import annotations

import numpy as np
import pytest

from device.tasks import detect
from device.tasks.base import Context
from host.perf import postprocess


@pytest.mark.parametrize("name,kept", [("photo", 20), ("crowd", detect.MAX_DETECTIONS)])
def test_a_scene_gives_its_boxes_and_nms_keeps_one_per_object(name, kept):
    objects, per_object = postprocess.SCENES[name]
    keep, rows = postprocess.scene(objects, per_object)
    rng = np.random.default_rng(0)
    network = rng.uniform(0, 0.2, keep.shape).astype(np.float32)    # under the 0.25 threshold
    head = network * keep + rows
    layout = detect.yolo_layout([{"shape": [1, *head.shape]}])
    boxes, scores, cls = detect.decode_yolo(head, layout, Context(input_hw=(postprocess.INPUT,) * 2))
    assert int((head[4:].max(axis=0) >= detect.DEFAULT_THRESHOLD).sum()) == objects * per_object
    assert len(boxes) == kept
