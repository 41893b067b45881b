"""Which array feeds which model input: by the input's name, or by position. One matcher for every
place arrays meet a model's inputs - `bench --input NAME=FILE`, an any-tensor eval set
(EVAL=npz:, on the board and on the host) and a calibration set (CALIB=npz:).

By name, an array matches an input when it equals the tensor's name in the .tflite, that name
without the converter's decoration (`serving_default_features:0` -> `features`), or the input's
name in the model's signature (the Keras / SavedModel input name). By position, arrays are named
x (one input) or x0, x1, ... and follow the CONVERTED model's input order, which is not always the
Keras model's (the converter sorts a signature's inputs by name): naming the arrays avoids that.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from device.errors import AgentError

_POSITIONAL = re.compile(r"^x(\d*)$")


def short_name(name: str) -> str:
    """'serving_default_features:0' -> 'features' (how Keras inputs appear after conversion)."""
    name = name[len("serving_default_"):] if name.startswith("serving_default_") else name
    return re.sub(r":\d+$", "", name)


def signature_names(interp: Any) -> dict:
    """{tensor index: signature input name} of the interpreter's first signature; {} when it has
    none (a model converted from concrete functions, a runtime without signatures)."""
    try:
        keys = list(interp.get_signature_list())
        if not keys:
            return {}
        details = interp.get_signature_runner(keys[0]).get_input_details()
        return {int(d["index"]): str(name) for name, d in details.items()}
    except Exception:       # an older runtime or ONNX Runtime: tensor names only
        return {}


def _aliases(spec: dict, sig: dict) -> list:
    names = [sig[spec["index"]]] if spec.get("index") in sig else []
    return names + [spec["name"], short_name(spec["name"])]


def input_names(in_specs: list, sig: Optional[dict] = None) -> list:
    """The name a user knows each input by: its signature name, else its tensor name undecorated."""
    sig = sig or {}
    return [sig.get(s.get("index"), short_name(s["name"])) for s in in_specs]


def input_keys(files: list) -> list:
    """The arrays of an any-tensor set (EVAL=npz:) that are inputs: all but the expected outputs
    y0, y1, ... and `labels`."""
    return [k for k in files if k != "labels" and not (k[:1] == "y" and k[1:].isdigit())]


def is_positional(names: list) -> bool:
    return bool(names) and all(_POSITIONAL.match(n) for n in names)


def check_names(given: list, what: str, order: str = "", kind: str = "usage") -> None:
    """What is wrong with a set of input-array names before any model is known: positional names
    mixed with others, or x0, x1, ... with gaps. One AgentError line (`kind`)."""
    positional = [n for n in given if _POSITIONAL.match(n)]
    if positional and len(positional) != len(given):
        raise AgentError(f"{what}: arrays {', '.join(positional)} are positional and "
                         f"{', '.join(n for n in given if n not in positional)} are names: name every input "
                         f"array after the model's inputs{f' ({order})' if order else ''} or number them all "
                         "x0, x1, ...", kind=kind)
    index = sorted(int(n[1:] or 0) for n in positional)
    if index != list(range(len(index))) or (len(given) > 1 and "x" in given):
        raise AgentError(f"{what}: arrays {', '.join(sorted(given))}: number them x0, x1, ... without gaps "
                         f"(or x alone for one input)", kind=kind)


def match(given: list, in_specs: list, what: str, sig: Optional[dict] = None, kind: str = "usage") -> list:
    """For each model input (in the model's order), the name in `given` that feeds it. `given` is
    either all positional (x, or x0, x1, ... numbered from 0) or all names; anything else, a name
    that matches no input, an input left without an array or a count that differs is one
    AgentError line (`kind`) naming the arrays and the model's inputs."""
    sig = sig or {}
    shown = input_names(in_specs, sig)
    order = ", ".join(shown)
    check_names(given, what, order, kind)
    if is_positional(given):
        index = {int(n[1:] or 0): n for n in given}
        if len(index) != len(in_specs):
            raise AgentError(f"{what}: {len(index)} input arrays for a model with {len(in_specs)} inputs ({order}): "
                             "x0, x1, ... follow the converted model's input order; or name the arrays after "
                             "the inputs", kind=kind)
        return [index[i] for i in range(len(in_specs))]
    owner: dict = {}
    for name in given:
        hits = [i for i, s in enumerate(in_specs) if name in _aliases(s, sig)]
        if not hits:
            raise AgentError(f"{what}: array {name!r} matches none of the model's inputs ({order}); name "
                             f"the arrays after them, or x0, x1, ... in that (the converted model's) order",
                             kind=kind)
        if hits[0] in owner:
            raise AgentError(f"{what}: arrays {owner[hits[0]]!r} and {name!r} both name input {shown[hits[0]]!r}",
                             kind=kind)
        owner[hits[0]] = name
    missing = [shown[i] for i in range(len(in_specs)) if i not in owner]
    if missing:
        raise AgentError(f"{what}: no array for model input {', '.join(repr(m) for m in missing)} "
                         f"(inputs: {order}; arrays: {', '.join(given)})", kind=kind)
    return [owner[i] for i in range(len(in_specs))]
