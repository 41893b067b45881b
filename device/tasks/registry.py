"""The tasks the agent knows, by name: the one place a new task is added.

Recognition tries them in ORDER (the most specific layouts first: a MoveNet (1,6,56) would also
pass for a tiny YOLO head); a model none of them recognises is `raw`.
"""
from __future__ import annotations

import importlib
from typing import Optional, Union

from device.errors import EXIT_USAGE, AgentError
from device.tasks import NAMES
from device.tasks.base import Task, label_count

TASKS = {name: importlib.import_module(f"device.tasks.{name}").TASK for name in NAMES}
ORDER = tuple(TASKS[name] for name in NAMES if name != "raw")
DEFAULT = "classify"


def get(name: str = DEFAULT) -> Task:
    """The task called name; an unknown name is a usage error in one line."""
    if name not in TASKS:
        raise AgentError(f"unknown task {name!r} (choose from {', '.join(TASKS)})", EXIT_USAGE, "usage")
    return TASKS[name]


def shapes(specs: list) -> str:
    return ", ".join(f"{s['name']} {list(s['shape'])}" for s in specs)


def recognise(in_specs: list, out_specs: list) -> tuple:
    """(task name, a note when it fell back to raw) from the model's inputs and outputs. Every task
    but raw feeds one image, so a model with several inputs is raw whatever its outputs."""
    if len(in_specs) != 1:
        return "raw", f"{len(in_specs)} inputs: task raw (inputs by position from an npz)"
    for task in ORDER:
        if task.matches(in_specs, out_specs):
            return task.name, None
    return "raw", f"output layout ({shapes(out_specs)}) is not one any task recognises: task raw"


def choose(forced: Optional[str], in_specs: list, out_specs: list) -> tuple:
    """(Task, note): the forced one when its layout fits (raw always does), else the recognised one.
    A forced task the outputs do not fit is a usage error naming the output shapes."""
    if forced:
        task = get(forced)
        if not task.matches(in_specs, out_specs):
            raise AgentError(f"--task {forced}: this model's outputs ({shapes(out_specs)}) are not a "
                             f"{forced} layout", EXIT_USAGE, "usage")
        return task, None
    name, note = recognise(in_specs, out_specs)
    return TASKS[name], note


def label_warning(task: Task, out_specs: list, labels: Optional[list], where: str = "labels",
                  model: Union[bytes, str, None] = None) -> Optional[str]:
    """One line when a label file's length does not match the classes the model has (from its
    output shapes, or from the model file where only the graph says: `model`, its bytes or path,
    read only then)."""
    want = task.classes(out_specs)
    if want is None and labels and model is not None:
        if isinstance(model, str):
            try:
                with open(model, "rb") as f:
                    model = f.read()
            except OSError:
                model = b""
        want = task.file_classes(model, out_specs)
    have = label_count(labels)
    if not labels or want is None or have == want:
        return None
    if task.name == "detect" and have == want - 1:      # a YOLOv5 head: objectness + the labels' classes
        return (f"{where}: {have} labels for {want} class score rows: read as YOLOv5 (objectness + {have} "
                f"classes); a YOLOv8 or later head of {want} classes needs {want} labels")
    return f"{where}: {have} labels but the model has {want} classes"
