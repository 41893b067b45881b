"""Ultralytics YOLO detection sets, converted to the same COCO-style set as a COCO JSON.

Layout (`yolo:PATH`, or `yolo:PATH:SPLIT` for PATH/images/SPLIT and PATH/labels/SPLIT):
PATH/images/<stem>.jpg|png|... and PATH/labels/<stem>.txt, one object per line
`class cx cy w h` with the box centre and size normalised to 0..1 of the image. An image without a
label file has no objects (Ultralytics' background images); a label file without an image is left
out as Ultralytics does, with one warning line naming how many and the first of them. Class names come from the first of
PATH/data.yaml (`names:` as a list or {index: name}), PATH/classes.txt (one per line), or the
data.yaml in PATH's parent (where Roboflow puts it next to train/ valid/ test/); without names the
classes are called "0", "1", ... and none is out of range.

Class i becomes category_id i; boxes become pixels [x, y, w, h] of the image size read from the
file header; image ids are 1.. in file-name order.
"""
from __future__ import annotations

from pathlib import Path

from device.contract.inputs import IMAGE_EXTS
from host.data.builtin import DatasetError
from host.evalsets.sets import DetectionSet, ImageEntry, image_size


def read_yolo(path: str | Path, split: str | None = None, spec: str = "") -> DetectionSet:
    """An Ultralytics-layout folder -> DetectionSet (category ids = YOLO class indices)."""
    root = Path(path)
    img_dir, lbl_dir = (root / "images", root / "labels") if not split else \
        (root / "images" / split, root / "labels" / split)
    if not img_dir.is_dir():
        raise DatasetError(f"{img_dir}: image folder not found (yolo:PATH reads PATH/images and PATH/labels)")
    if not lbl_dir.is_dir():
        raise DatasetError(f"{lbl_dir}: label folder not found (yolo:PATH reads PATH/images and PATH/labels)")
    files = sorted(f for f in img_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError(f"{img_dir}: no images ({', '.join(IMAGE_EXTS)})")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DatasetError(f"{f}: shares the label file {f.stem}.txt with {stems[f.stem].name}")
        stems[f.stem] = f
    names, names_file = _names(root)
    images: list[ImageEntry] = []
    anns: list[dict] = []
    for k, f in enumerate(files):
        w, h = image_size(f, str(f))
        entry = ImageEntry(k + 1, f, w, h)
        images.append(entry)
        label = lbl_dir / f"{f.stem}.txt"
        if label.is_file():
            for cls, box in _read_label(label, names, names_file):
                x = (box[0] - box[2] / 2) * w
                y = (box[1] - box[3] / 2) * h
                bw, bh = box[2] * w, box[3] * h
                anns.append({"id": len(anns) + 1, "image_id": entry.image_id, "category_id": cls,
                             "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})
    orphans = sorted(p.name for p in lbl_dir.glob("*.txt") if p.stem not in stems and p.name != "classes.txt")
    if orphans:
        print(f"warning: {lbl_dir}: {len(orphans)} label file(s) without an image left out "
              f"({', '.join(orphans[:3])}{', ...' if len(orphans) > 3 else ''}; images: {', '.join(IMAGE_EXTS)})")
    if names is None:
        names = [str(i) for i in range(max((a["category_id"] for a in anns), default=0) + 1)]
    coco = {"images": [{"id": e.image_id, "file_name": e.path.name, "width": e.width, "height": e.height}
                       for e in images],
            "annotations": anns, "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}
    return DetectionSet(spec or f"yolo:{root}", images, coco, list(names), list(range(len(names))))


def _read_label(path: Path, names: list[str] | None, names_file: str) -> list[tuple[int, list[float]]]:
    """Lines `class cx cy w h`; blank lines are skipped, anything else wrong names the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({type(exc).__name__})") from None
    out = []
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        what = f"{path}: line {n}"
        if len(fields) != 5:
            raise DatasetError(f"{what}: expected 5 fields (class cx cy w h), got {len(fields)}")
        try:
            cls = int(fields[0])
            box = [float(v) for v in fields[1:]]
        except ValueError:
            raise DatasetError(f"{what}: expected an integer class and 4 numbers, got {line.strip()!r}") from None
        if cls < 0 or (names is not None and cls >= len(names)):
            limit = f"{len(names)} classes in {names_file}" if names is not None else "classes start at 0"
            raise DatasetError(f"{what}: class {cls} is out of range ({limit})")
        if not all(0.0 <= v <= 1.0 for v in box):
            raise DatasetError(f"{what}: cx cy w h must be normalised to 0..1, got {' '.join(fields[1:])}")
        out.append((cls, box))
    return out


def _names(root: Path) -> tuple[list[str] | None, str]:
    """Class names and the file they came from (None, "" when the set names none)."""
    for candidate in (root / "data.yaml", root / "classes.txt", root.parent / "data.yaml"):
        if not candidate.is_file():
            continue
        if candidate.suffix == ".txt":
            try:
                lines = [l.strip() for l in candidate.read_text(encoding="utf-8").splitlines()]
            except (OSError, UnicodeDecodeError) as exc:
                raise DatasetError(f"{candidate}: cannot read ({type(exc).__name__})") from None
            while lines and not lines[-1]:
                lines.pop()
            return lines, str(candidate)
        return _yaml_names(candidate), str(candidate)
    return None, ""


def _yaml_names(path: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError(f"{path}: cannot read as YAML ({type(exc).__name__})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, (dict, list)) and data.get("nc") is not None and data["nc"] != len(names):
        raise DatasetError(f"{path}: nc is {data['nc']} but names has {len(names)} entries")
    if isinstance(names, dict):
        try:
            index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: names: keys must be class indices 0, 1, ...") from None
        if sorted(index) != list(range(len(index))):
            raise DatasetError(f"{path}: names: class indices must run 0..{len(index) - 1} without gaps")
        return [index[i] for i in range(len(index))]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"{path}: needs names: a list of class names or {{index: name}}")
