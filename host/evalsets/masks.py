"""Segmentation sets: images and class-index PNG masks with the same stem (PASCAL VOC convention).

`masks:IMAGES:MASKS` pairs IMAGES/<stem>.jpg|png|... with MASKS/<stem>.png. A mask is one channel
(mode L, or mode P whose palette indices are the classes, as VOC ships them) of the image's exact
size; value 255 marks pixels not scored (VOC's object borders). Every pair is checked from the file
headers when the set is opened, so a wrong mask fails before any model runs; pixels are read only
when scored (`read_mask`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from device.contract.inputs import IMAGE_EXTS
from host.data.builtin import DatasetError
from host.evalsets.sets import MaskSet, image_size

MASK_MODES = ("L", "P")


def read_masks(images_dir: str | Path, masks_dir: str | Path, spec: str = "") -> MaskSet:
    """Every image with its mask, checked for mode and size; an image or a mask alone is an error."""
    img_root, mask_root = Path(images_dir), Path(masks_dir)
    for d, what in ((img_root, "image"), (mask_root, "mask")):
        if not d.is_dir():
            raise DatasetError(f"{d}: {what} folder not found (masks:IMAGES:MASKS)")
    images = sorted(f for f in img_root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise DatasetError(f"{img_root}: no images ({', '.join(IMAGE_EXTS)})")
    masks = {f.stem: f for f in mask_root.iterdir() if f.is_file() and f.suffix.lower() == ".png"}
    pairs: list[tuple[Path, Path]] = []
    seen: dict[str, Path] = {}
    for img in images:
        if img.stem in seen:
            raise DatasetError(f"{img}: shares the mask {img.stem}.png with {seen[img.stem].name}")
        seen[img.stem] = img
        mask = masks.get(img.stem)
        if mask is None:
            raise DatasetError(f"{img}: no mask {mask_root / (img.stem + '.png')}")
        _check_pair(img, mask)
        pairs.append((img, mask))
    alone = sorted(set(masks) - set(seen))
    if alone:
        raise DatasetError(f"{masks[alone[0]]}: no image with the stem {alone[0]!r} in {img_root}"
                           + (f" (and {len(alone) - 1} more masks)" if len(alone) > 1 else ""))
    return MaskSet(spec or f"masks:{img_root}:{mask_root}", pairs)


def _check_pair(img: Path, mask: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(mask) as m:
            mode, size = m.mode, m.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{mask}: cannot read mask ({type(exc).__name__})") from None
    if mode not in MASK_MODES:
        raise DatasetError(f"{mask}: mode {mode}; a class-index mask is one channel (mode L or P)")
    w, h = image_size(img, str(img))
    if size != (w, h):
        raise DatasetError(f"{mask}: mask is {size[0]}x{size[1]} but its image {img.name} is {w}x{h}")


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) uint8 class indices; a P-mode mask gives its palette indices, not colours."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as m:
            if m.mode not in MASK_MODES:
                raise DatasetError(f"{path}: mode {m.mode}; a class-index mask is one channel (mode L or P)")
            return np.asarray(m, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: cannot read mask ({type(exc).__name__})") from None
