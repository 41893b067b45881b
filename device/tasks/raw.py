"""Any model: every output by name, dequantised. Used for models no other task recognises (audio
features, sensor windows, multi-input or multi-output models) and when `--task raw` is asked for."""
from __future__ import annotations

from typing import Any

import numpy as np

from device.tasks.base import Context, Task, read_all

MAX_VALUES = 4096     # outputs larger than this are summarised, not listed


def read(interp: Any, out_specs: list) -> dict:
    return {"outputs": read_all(interp, out_specs), "specs": out_specs}


def answer(raw: dict, ctx: Context) -> dict:
    outs = []
    for arr, spec in zip(raw["outputs"], raw["specs"]):
        flat = np.asarray(arr, dtype=np.float32).ravel()
        entry: dict = {"name": spec["name"], "shape": [int(d) for d in np.shape(arr)], "dtype": spec["dtype"],
                       "argmax": int(np.argmax(flat)) if flat.size else None,
                       "min": float(flat.min()) if flat.size else None,
                       "max": float(flat.max()) if flat.size else None}
        if flat.size <= MAX_VALUES:
            entry["values"] = [round(float(v), 6) for v in flat]
        outs.append(entry)
    return {"outputs": outs}


TASK = Task(name="raw", matches=lambda in_specs, out_specs: True, read=read, answer=answer)
