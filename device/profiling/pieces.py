"""A model's single-operator pieces on disk: op<i>.tflite files plus pieces.json saying how they fit.

Why a separate step: cutting needs the flatbuffer schema, which tflite-runtime does not ship. The
agent cuts on the board when it can; otherwise `make profile` cuts on the host
(`python -m device.profiling.pieces MODEL OUT_DIR`), ships the directory, and the agent times the pieces
(`profile MODEL --pieces DIR`) without reading the model's flatbuffer itself.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

from device.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AgentError, error_line
from device.contract.fileio import atomic_write_bytes, atomic_write_text

FORMAT = "edgekit/pieces-v1"
INDEX = "pieces.json"
PROG = "device.profiling.pieces"


def _spec(tensor: Any) -> dict:
    from device.profiling import flatmodel
    name = tensor.name.decode(errors="replace") if isinstance(tensor.name, bytes) else str(tensor.name or "")
    return {"name": name, "shape": flatmodel.shape(tensor), "dtype": flatmodel.dtype_name(tensor)}


def prepare(flat: Any, out_dir: str, sha256: Optional[str] = None) -> dict:
    """Write every piece, the trivial model and pieces.json to out_dir; returns the index."""
    from device.profiling import memplan
    from device.profiling import opcut
    os.makedirs(out_dir, exist_ok=True)
    sg = flat.subgraphs[0]
    unpackers = opcut.weight_ops(flat)
    atomic_write_bytes(os.path.join(out_dir, "trivial.tflite"), opcut.trivial_model())
    ops = []
    for i, op in enumerate(sg.operators or []):
        wanted = opcut.piece_inputs(flat, i)
        row = {"facts": opcut.facts(flat, i), "weight_op": i in unpackers, "file": None, "reason": None,
               "inputs": wanted, "input_specs": [_spec(sg.tensors[t]) for t in wanted],
               "outputs": [int(t) for t in op.outputs if t >= 0]}
        if i not in unpackers:
            try:
                blob = opcut.cut(flat, i)
                row["file"] = f"op{i}.tflite"
                atomic_write_bytes(os.path.join(out_dir, row["file"]), blob)
            except opcut.Uncuttable as exc:
                row["reason"] = str(exc)
        ops.append(row)
    index = {"format": FORMAT, "model_sha256": sha256, "inputs": [int(t) for t in sg.inputs],
             "input_specs": [_spec(sg.tensors[t]) for t in sg.inputs],
             "memory_plan": memplan.plan(flat), "trivial": "trivial.tflite", "ops": ops}
    atomic_write_text(os.path.join(out_dir, INDEX), json.dumps(index))   # last: it vouches for the pieces
    return index


def load(directory: str, sha256: Optional[str]) -> dict:
    """The index of pieces cut elsewhere; refused if they were cut from another model."""
    try:
        with open(os.path.join(directory, INDEX)) as f:
            index = json.load(f)
    except (OSError, ValueError) as exc:
        raise AgentError(f"{directory}: no readable {INDEX} ({type(exc).__name__})", kind="input") from None
    if index.get("format") != FORMAT:
        raise AgentError(f"{directory}/{INDEX}: not {FORMAT}", kind="input")
    if sha256 and index.get("model_sha256") not in (None, sha256):
        raise AgentError(f"{directory}: these pieces were cut from another model (sha256 differs)", kind="input")
    return index


def main(argv: Optional[list] = None) -> int:
    """python -m device.profiling.pieces MODEL OUT_DIR (on a machine with ai-edge-litert or TensorFlow).
    Exit 2 for a wrong command line, 1 when the model cannot be cut."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0].startswith("-"):
        print(error_line(PROG, "expected MODEL and OUT_DIR (usage: python -m device.profiling.pieces MODEL OUT_DIR)"),
              file=sys.stderr)
        return EXIT_USAGE
    from device.profiling import flatmodel
    from device.runtimes import modelfile
    try:
        described = modelfile.describe(argv[0])
        index = prepare(flatmodel.read(argv[0]), argv[1], described["sha256"])
    except AgentError as exc:
        print(error_line(PROG, exc), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(error_line(PROG, f"cannot write {argv[1]}: {exc.strerror or exc}"), file=sys.stderr)
        return EXIT_FAILED
    print(f"{argv[1]}: {sum(1 for o in index['ops'] if o['file'])} of {len(index['ops'])} operators cut")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
