"""The search space: checked on load, a trial's values built as the space says, c00 exactly the default model."""
from __future__ import annotations

import pytest

from host.search import space as sp
from host.search import study as st


def test_the_default_model_is_a_point_of_every_space_and_builds_as_itself():
    space = sp.load_space(sp.DEFAULT_SPACE)
    choices = st.choices(space, (28, 28, 1))
    default = st.defaults()
    assert all(default[k] in choices[k] for k in st.KEYS)
    assert st.config_of(default, (28, 28, 1)) == sp.default_config((28, 28, 1))
    sides = {st.config_of({**default, "resolution": r}, (28, 28, 1))["input"][0] for r in choices["resolution"]}
    assert all(8 <= s <= 28 for s in sides) and len(sides) > 1
    assert {st.config_of({**default, "resolution": r}, (8, 8, 1))["input"][0] for r in choices["resolution"]} == {8}


def test_last_width_replaces_the_widest_blocks_and_keeps_each_blocks_kind():
    """The default model's blocks carry a kind ("conv", "pw"); a narrower last width must keep it."""
    default = st.defaults()
    cfg = st.config_of({**default, "last_width": 64}, (28, 28, 1))
    widest = max(b[0] for b in sp.default_config((28, 28, 1))["blocks"])
    want = [[64 if b[0] == widest else b[0], *b[1:]] for b in sp.default_config((28, 28, 1))["blocks"]]
    assert cfg["blocks"] == want and any(len(b) == 3 for b in cfg["blocks"])
    assert sp.build(cfg, 10).count_params() < sp.build(sp.default_config((28, 28, 1)), 10).count_params()


def test_c00_builds_exactly_the_default_model():
    from host.model.architecture import build_model

    default = build_model((28, 28, 1), 10)
    c00 = sp.build(sp.default_config((28, 28, 1)), 10)
    assert [(l.name, l.get_config().get("kernel_size"), tuple(w.shape for w in l.weights)) for l in default.layers] == \
           [(l.name, l.get_config().get("kernel_size"), tuple(w.shape for w in l.weights)) for l in c00.layers]


@pytest.mark.parametrize("text, words", [
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 2]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n"
     "widht: [1]\n", "unknown key(s) widht"),
    ("alpha: []\nresolution: [1.0]\nblocks: [[[64, 2]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n",
     "alpha must be a non-empty list"),
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 3]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n",
     "[filters, stride]"),
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 2]]]\nkernel: [4]\nlast_width: [null]\nstem_filters: [16]\n",
     "odd"),
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 2, pw]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n",
     "a pw block has stride 1"),
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 2, dw]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n",
     "kind sep, pw, conv"),
    ("alpha: [1.0]\nresolution: [1.0]\nblocks: [[[64, 2]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n"
     "stem_stride: [1, 3]\n", "stem_stride choices must be 1 or 2"),
    ("alpha: [1.0\n", "not valid YAML"),
])
def test_bad_space_is_one_line(tmp_path, text, words):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(sp.SearchError) as e:
        sp.load_space(path)
    assert words in str(e.value) and "\n" not in str(e.value)


ONE = "alpha: [1.0]\nresolution: [1.0, 0.5]\nblocks: [[[64, 2]]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [16]\n"


def test_a_space_without_stem_stride_keeps_the_default_stride(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(ONE)
    assert sp.load_space(path).stem_stride == [1]


def test_stride_2_stem_builds_the_halved_maps_and_small_inputs_keep_stride_1(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(ONE + "stem_stride: [2]\n")
    space = sp.load_space(path)

    def points(native):
        return [st.config_of({**st.defaults(), "blocks": st.choices(space, native)["blocks"][0], "alpha": 1.0,
                              "stem_stride": 2, "resolution": r}, native) for r in space.resolution]
    drawn = points((32, 32, 1))                          # 32 px and 16 px, each with a stride-2 stem
    assert sorted(c["input"][0] for c in drawn) == [16, 32] and all(c["stem_stride"] == 2 for c in drawn)
    big = next(c for c in drawn if c["input"][0] == 32)
    assert sp.build(big, 10).get_layer("stem_conv").output.shape[1] == 16
    assert sp.describe(big).startswith("a1 32px/2 ")
    small = points((12, 12, 1))                          # 12 and 8 px: the builder ignores stride 2 there,
    assert len(small) == 2 and all(c["stem_stride"] == 1 for c in small)   # so it is recorded as built


def test_the_scaled_default_ladder_covers_every_width_and_resolution_largest_first():
    """After c00 the study measures the default model at the space's widths and resolutions, the most
    costly (alpha^2 x resolution^2) first, so the first step within budget is the largest that fits."""
    space = sp.load_space(sp.DEFAULT_SPACE)
    steps = st.ladder(space)
    pairs = [(s["alpha"], s["resolution"]) for s in steps]
    assert sorted(pairs) == sorted({(a, r) for a in space.alpha for r in space.resolution} - {(1.0, 1.0)})
    cost = [(a * r) ** 2 for a, r in pairs]
    assert cost == sorted(cost, reverse=True)
    assert pairs[:3] == [(0.75, 1.0), (1.0, 0.75), (0.75, 0.75)]          # a tie goes to the larger input
    default, choices = st.defaults(), st.choices(space, (28, 28, 1))
    for s in steps:                 # the default model's pattern, only its width and input changed
        assert {k: v for k, v in s.items() if k not in ("alpha", "resolution")} == \
               {k: v for k, v in default.items() if k not in ("alpha", "resolution")}
        assert all(s[k] in choices[k] for k in st.KEYS)
