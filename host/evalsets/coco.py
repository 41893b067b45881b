"""COCO JSON detection sets, as CVAT, Label Studio and Roboflow export them.

Read: `images` (id, file_name, width, height), `annotations` (id, image_id, category_id,
bbox [x, y, w, h] in pixels, iscrowd, area, and optionally keypoints [x, y, v] * K with
num_keypoints) and `categories` (id, name, optionally keypoint names). Polygons and RLE masks are
not read: detection and keypoint scores need boxes, areas and keypoints only.

Tolerated, because the exporters differ: width/height missing (read from the image header), area
missing (w*h), ids starting at 0 (Label Studio), a file_name with folders in front of the name
(found as images_dir/file_name, else images_dir/<its last part>). Entries are named in errors by
their 0-based position in the file's list and their id, e.g. `annotation 17 (id 4051)`.
"""
from __future__ import annotations

import json
from pathlib import Path

from host.data.builtin import DatasetError
from host.evalsets.sets import DetectionSet, ImageEntry, image_size, integer, number


def read_coco(json_path: str | Path, images_dir: str | Path | None = None, spec: str = "") -> DetectionSet:
    """A COCO instances JSON and its image folder (default: the JSON's folder, as Roboflow exports)."""
    jp = Path(json_path)
    name = str(jp)
    data = _load_json(jp)
    root = Path(images_dir) if images_dir else jp.parent
    if not root.is_dir():
        raise DatasetError(f"{name}: image folder not found: {root}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{name}: needs a list '{key}' (COCO instances format)")
    cats = _categories(data["categories"], name)
    images = _images(data["images"], root, name)
    by_id = {c["id"]: c for c in cats}
    image_ids = {e.image_id for e in images}
    anns = [_annotation(a, i, name, image_ids, by_id) for i, a in enumerate(data["annotations"])]
    for k, a in enumerate(anns):
        a["id"] = k + 1
    coco = {"images": [{"id": e.image_id, "file_name": e.path.name, "width": e.width, "height": e.height}
                       for e in images],
            "annotations": anns, "categories": cats}
    kp_names = next((list(c["keypoints"]) for c in cats if c.get("keypoints")), [])
    return DetectionSet(spec or f"coco:{jp}:{root}", images, coco, [c["name"] for c in cats],
                        [c["id"] for c in cats], kp_names)


def _load_json(jp: Path) -> dict:
    if not jp.is_file():
        raise DatasetError(f"{jp}: COCO annotation file not found")
    try:
        data = json.loads(jp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{jp}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{jp}: cannot read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{jp}: expected a JSON object with images, annotations, categories")
    return data


def _entry(kind: str, i: int, item) -> str:
    ident = item.get("id") if isinstance(item, dict) else None
    return f"{kind} {i}" + (f" (id {ident})" if ident is not None else "")


def _unique_id(item, what: str, seen) -> int:
    """An entry that must be an object with an integer id no other entry of its list has."""
    if not isinstance(item, dict):
        raise DatasetError(f"{what}: expected an object")
    ident = integer(item.get("id"), f"{what}: id")
    if ident in seen:
        raise DatasetError(f"{what}: id {ident} appears twice")
    return ident


def _categories(items: list, name: str) -> list[dict]:
    """Categories sorted by id: the order category names are reported in."""
    cats: dict[int, dict] = {}
    for i, c in enumerate(items):
        what = f"{name}: {_entry('category', i, c)}"
        cid = _unique_id(c, what, cats)
        if not isinstance(c.get("name"), str):
            raise DatasetError(f"{what}: name must be a string")
        cat = {"id": cid, "name": c["name"]}
        if "keypoints" in c:
            if not isinstance(c["keypoints"], list) or not all(isinstance(k, str) for k in c["keypoints"]):
                raise DatasetError(f"{what}: keypoints must be a list of names")
            cat["keypoints"] = list(c["keypoints"])
            cat["skeleton"] = c.get("skeleton", [])
        cats[cid] = cat
    if not cats:
        raise DatasetError(f"{name}: no categories")
    return [cats[k] for k in sorted(cats)]


def _images(items: list, root: Path, name: str) -> list[ImageEntry]:
    out: list[ImageEntry] = []
    seen: set[int] = set()
    for i, im in enumerate(items):
        what = f"{name}: {_entry('image', i, im)}"
        iid = _unique_id(im, what, seen)
        seen.add(iid)
        fname = im.get("file_name")
        if not isinstance(fname, str) or not fname:
            raise DatasetError(f"{what}: file_name must be a non-empty string")
        path = root / fname
        if not path.is_file() and (root / Path(fname).name).is_file():
            path = root / Path(fname).name
        if not path.is_file():
            raise DatasetError(f"{what}: image file not found: {root / fname}")
        if im.get("width") is None or im.get("height") is None:
            w, h = image_size(path, what)
        else:
            w, h = integer(im["width"], f"{what}: width"), integer(im["height"], f"{what}: height")
        if w <= 0 or h <= 0:
            raise DatasetError(f"{what}: width and height must be positive, got {w}x{h}")
        out.append(ImageEntry(iid, path, w, h))
    return out


def _annotation(a, i: int, name: str, image_ids: set[int], cats: dict[int, dict]) -> dict:
    """One annotation checked and reduced to what pycocotools scores boxes and keypoints with."""
    what = f"{name}: {_entry('annotation', i, a)}"
    if not isinstance(a, dict):
        raise DatasetError(f"{what}: expected an object")
    source_id = integer(a.get("id"), f"{what}: id")
    image_id = integer(a.get("image_id"), f"{what}: image_id")
    if image_id not in image_ids:
        raise DatasetError(f"{what}: image_id {image_id} is not in images")
    cid = integer(a.get("category_id"), f"{what}: category_id")
    if cid not in cats:
        raise DatasetError(f"{what}: category_id {cid} is not in categories")
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DatasetError(f"{what}: bbox must be 4 numbers [x, y, width, height]")
    bbox = [number(v, f"{what}: bbox") for v in bbox]
    if bbox[2] < 0 or bbox[3] < 0:
        raise DatasetError(f"{what}: bbox width and height must be >= 0, got {bbox[2]:g}x{bbox[3]:g}")
    crowd = integer(a.get("iscrowd", 0), f"{what}: iscrowd")
    if crowd not in (0, 1):
        raise DatasetError(f"{what}: iscrowd must be 0 or 1, got {crowd}")
    area = number(a["area"], f"{what}: area") if a.get("area") is not None else bbox[2] * bbox[3]
    out = {"id": 0, "source_id": source_id, "image_id": image_id, "category_id": cid, "bbox": bbox,
           "area": area, "iscrowd": crowd}
    if a.get("keypoints") is not None:
        out.update(_keypoints(a, what, cats[cid]))
    return out


def _keypoints(a: dict, what: str, cat: dict) -> dict:
    kps = a["keypoints"]
    names = cat.get("keypoints")
    if not names:
        raise DatasetError(f"{what}: has keypoints but category {cat['id']} names none")
    if not isinstance(kps, list) or len(kps) != 3 * len(names):
        raise DatasetError(f"{what}: keypoints must be {3 * len(names)} numbers (x, y, v for each of "
                           f"{len(names)} keypoints), got {len(kps) if isinstance(kps, list) else kps!r}")
    kps = [number(v, f"{what}: keypoints") for v in kps]
    if any(v not in (0, 1, 2) for v in kps[2::3]):
        raise DatasetError(f"{what}: keypoint visibility must be 0, 1 or 2")
    visible = sum(1 for v in kps[2::3] if v > 0)
    n = integer(a["num_keypoints"], f"{what}: num_keypoints") if a.get("num_keypoints") is not None else visible
    return {"keypoints": kps, "num_keypoints": n}
