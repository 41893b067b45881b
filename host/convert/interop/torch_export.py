"""A PyTorch model to an ONNX file; run as a program by the torch venv's Python (`make venv-torch`).

Why a program: torch lives in its own venv (the CPU build, pinned), never in the main one, so the
main process only ever sees the ONNX file this writes. Standard library + torch (+ onnx, which
torch's exporter uses) only; it imports nothing from edgekit.

    python torch_export.py OUT.onnx MODEL [WEIGHTS] [INPUT]

MODEL is a saved torch.export program (.pt2) or path/net.py:build_fn (a function returning the
nn.Module); WEIGHTS a state_dict file for build_fn; INPUT the example input's shape (1x3x224x224;
a .pt2 program knows its own). Failures are one line on stderr and exit 2.
"""
from __future__ import annotations

import importlib.util
import sys
import warnings

OPSET = 17


def fail(message: str) -> None:
    sys.stderr.write(" ".join(str(message).split())[:400] + "\n")
    sys.exit(2)


def build(spec: str, weights: str):
    import torch

    path, _, fn = spec.rpartition(":")
    try:
        module_spec = importlib.util.spec_from_file_location("edgekit_user_model", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as exc:
        fail(f"{path}: cannot import it ({type(exc).__name__}: {exc})")
    if not callable(getattr(module, fn, None)):
        fail(f"{path} has no function {fn!r} (MODEL=path/net.py:build_fn)")
    model = getattr(module, fn)()
    if not isinstance(model, torch.nn.Module):
        fail(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except Exception as exc:
            fail(f"WEIGHTS={weights}: cannot load it into {fn}() ({type(exc).__name__}: {exc})")
    return model.eval()


def main(argv: list) -> None:
    out, spec = argv[0], argv[1]
    weights = argv[2] if len(argv) > 2 else ""
    shape = argv[3] if len(argv) > 3 else ""
    import torch

    if spec.endswith(".pt2"):
        try:
            program = torch.export.load(spec)
        except Exception as exc:
            fail(f"{spec}: not a saved torch.export program ({type(exc).__name__}: {exc})")
        example = [a for a in program.example_inputs[0]] if program.example_inputs else []
        if shape:
            example = [torch.zeros([int(d) for d in shape.split("x")])]
        if len(example) != 1:
            fail(f"{spec}: the program takes {len(example)} inputs; give one image input (INPUT=1x3xHxW)")
    else:
        program = None
        if not shape:
            fail("INPUT= is needed with MODEL=net.py:build_fn (e.g. INPUT=1x3x224x224)")
        model = build(spec, weights)
        example = [torch.zeros([int(d) for d in shape.split("x")])]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.endswith(".pt2"):   # a program is exported as it is (torch.export-based exporter)
                onnx_program = torch.onnx.export(program, tuple(example), dynamo=True,
                                                 verbose=False)
                onnx_program.save(out)
            else:
                with torch.no_grad():
                    torch.onnx.export(model, tuple(example), out, opset_version=OPSET, input_names=["input"],
                                      output_names=["output"], dynamo=False)
    except Exception as exc:
        fail(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


if __name__ == "__main__":
    main(sys.argv[1:])
