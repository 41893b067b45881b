"""Files named on the command line; a folder stands for its images and .npy files, sorted by name."""
from __future__ import annotations

import os
from typing import Iterator

from device.contract import inputs
from device.sources.base import Item, Options, Source


def open_files(where: list, options: Options) -> Iterator[Item]:
    items = []
    for p in where:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.lower().endswith(inputs.IMAGE_EXTS + (".npy",)):
                    items.append(os.path.join(p, name))
        else:
            items.append(p)
    return iter([Item(name=path, path=path) for path in items])


SOURCE = Source(name="files", open=open_files)
