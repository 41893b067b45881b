"""The tasks the agent knows, by name: the one place a new task is added."""
from __future__ import annotations

from device.errors import EXIT_USAGE, AgentError
from device.tasks import classify
from device.tasks.base import Task

DEFAULT = "classify"
TASKS = {t.name: t for t in (classify.TASK,)}


def get(name: str = DEFAULT) -> Task:
    """The task called name; an unknown name is a usage error in one line."""
    if name not in TASKS:
        raise AgentError(f"unknown task {name!r} (choose from {', '.join(TASKS)})", EXIT_USAGE, "usage")
    return TASKS[name]
