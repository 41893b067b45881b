"""A good video with damaged frames inside (not a corrupt file): the agent's video: source skips
and counts each frame that does not decode, answers the rest as if nothing had happened, and the
summary's counts add up to the file's length."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.cached_models import task_models
from tests.device.conftest import run_agent
from tests.device.video import clips

pytestmark = pytest.mark.timeout(180)
DAMAGED = (10, 11, 12)


def _decodable(path) -> int:
    import cv2
    cap = cv2.VideoCapture(str(path))
    good = sum(cap.read()[0] for _ in range(int(cap.get(cv2.CAP_PROP_FRAME_COUNT))))
    cap.release()
    return good


def _run(clip) -> tuple:
    run = run_agent("infer", task_models()["segment"], "--source", f"video:{clip}", "--json", "-")
    assert run.code == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    return {r["input"].rsplit("[", 1)[1][:-1]: r["segmentation"] for r in rows[:-1]}, rows[-1]["summary"], run


def test_damaged_frames_inside_a_video_are_skipped_counted_and_the_rest_answered(tmp_path):
    good = clips.write_clip(tmp_path / "good.avi", frames=30, fourcc="MJPG")
    bad = tmp_path / "bad.avi"
    shutil.copy(good, bad)
    clips.damage_frames(str(bad), list(DAMAGED))
    assert _decodable(bad) == 27                    # the damage is real: OpenCV cannot decode those three

    want, _, _ = _run(good)
    got, summary, run = _run(bad)
    assert (summary["frames"], summary["corrupt"], summary["dropped"], summary["failed"]) == (27, 3, 0, 0)
    assert summary["frames"] + summary["corrupt"] == summary["source"]["frames_available"] == 30
    assert sorted(got, key=int) == [str(i) for i in range(30) if i not in DAMAGED]     # true frame numbers
    assert got == {i: seg for i, seg in want.items() if int(i) not in DAMAGED}         # the frames themselves
    assert "27 frames" in run.stderr and "corrupt 3" in run.stderr
