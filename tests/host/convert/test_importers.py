"""The importer registry: each format's importer claims its own paths and no other's; what none
takes is refused in one line naming the formats there are."""
from __future__ import annotations

from pathlib import Path

import pytest

from host.convert.importers import IMPORTERS, formats_hint, identify, importer
from host.convert.source import ModelError


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    """One path of each registered format (contents are not read by identify)."""
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really")
    (tmp_path / "m.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3 not really")
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    from tests import onnx_models
    onnx_models.linear(tmp_path / "m.onnx")          # an ONNX model is checked (opset, ops, inputs) on sight
    (tmp_path / "m.pt2").write_bytes(b"PK\x03\x04 a torch.export program, not really")
    return {"keras": tmp_path / "m.keras", "h5": tmp_path / "m.h5", "tflite": tmp_path / "m.tflite",
            "saved_model": saved, "onnx": tmp_path / "m.onnx", "torch": tmp_path / "m.pt2"}


def test_each_importer_identifies_its_own_format_and_no_other(paths):
    assert {i.format for i in IMPORTERS} == set(paths)
    for imp in IMPORTERS:
        claimed = [fmt for fmt, p in paths.items() if imp.identify(p)]
        assert claimed == [imp.format], f"{imp.format} claims {claimed}"


def test_identify_names_the_format_and_digests_the_model(paths):
    for fmt, p in paths.items():
        src = identify(p)
        assert src.format == fmt and len(src.sha256) == 64 and importer(fmt).format == fmt
    before = identify(paths["saved_model"]).sha256
    (paths["saved_model"] / "variables" / "v.index").write_bytes(b"x")
    assert identify(paths["saved_model"]).sha256 != before      # a directory digest covers every file


def test_hdf5_suffix_is_the_h5_importer(tmp_path):
    (tmp_path / "m.HDF5").write_bytes(b"x")
    assert identify(tmp_path / "m.HDF5").format == "h5"


@pytest.mark.parametrize("name,needle", [
    ("m.caffemodel", "unknown model format .caffemodel; use a .keras, .h5, .onnx, .pt2, .tflite file or a "
                     "SavedModel directory"),
    ("model", "unknown model format (no suffix)"),
])
def test_an_unknown_format_is_refused_in_one_line(tmp_path, name, needle):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ModelError) as err:
        identify(tmp_path / name)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_refusals_before_any_importer(tmp_path):
    with pytest.raises(ModelError, match=r"model not found: .* \(MODEL= a \.keras, \.h5, \.onnx, \.pt2, \.tflite file "
                                         r"or a SavedModel directory\)"):
        identify(tmp_path / "nope.keras")
    (tmp_path / "empty.keras").write_bytes(b"")
    with pytest.raises(ModelError, match="is an empty file: not a model"):
        identify(tmp_path / "empty.keras")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ModelError, match="directory without saved_model.pb: not a SavedModel"):
        identify(tmp_path / "dir")


def test_the_refusal_lists_every_registered_format():
    hint = formats_hint()
    for imp in IMPORTERS:
        assert imp.hint in hint
    with pytest.raises(ModelError, match="unknown model format 'caffe'"):
        importer("caffe")


def test_a_build_fn_spec_is_torch_and_digested_by_its_file(tmp_path):
    (tmp_path / "net.py").write_text("def build():\n    pass\n")
    src = identify(f"{tmp_path}/net.py:build")
    assert src.format == "torch" and len(src.sha256) == 64


def test_only_tflite_is_taken_as_it_is():
    as_is = [i.format for i in IMPORTERS if i.to_saved_model is None]
    assert as_is == ["tflite"]
