"""`infer MODEL --source SPEC`: the frame pipeline from a camera, a video, a stream or an image
sequence, with its flags (shared with `serve --source`), the sinks and the summary.

Exit codes: 0 the source ended or the run was stopped (Ctrl-C, SIGTERM, --frames); 1 a stream
gave up after its reconnects, or every frame failed; 2 a bad spec, no camera, a missing library.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Optional

from device.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AgentError


def _size(text: str) -> tuple:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(w), int(h)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _reconnects(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def add_flags(p: argparse.ArgumentParser) -> None:
    """The frame-source flags of infer and serve."""
    p.add_argument("--source", metavar="SPEC", help="frames from video:CLIP, images:FOLDER, camera:N, rtsp://..., "
                                                    "http://... or picamera2 (the frame pipeline)")
    p.add_argument("--size", type=_size, metavar="WxH", help="--source: resolution to request (e.g. 640x480)")
    p.add_argument("--fps", type=_rate, help="--source: frame rate to request (or to play a file at, with --realtime)")
    p.add_argument("--realtime", action="store_true",
                   help="video:/images: at their own frame rate like a camera (the newest frame wins)")
    p.add_argument("--max_rate", "--max-rate", dest="max_rate", type=_rate, metavar="FPS",
                   help="answer at most FPS frames per second (a live source drops the rest)")
    p.add_argument("--frames", type=_count, metavar="N", help="stop after N answered frames")
    p.add_argument("--reconnect", type=_reconnects, default=5, metavar="N",
                   help="a network stream: give up after N failed reconnects in a row (default 5)")
    p.add_argument("--record", metavar="OUT.mp4", help="--source: write the annotated video (always finalised)")
    p.add_argument("--on_detect", "--on-detect", dest="on_detect", metavar="LABEL>=SCORE",
                   help="--source: run --exec CMD or POST to --webhook URL when a detection fits (e.g. person>=0.6)")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="--on-detect: the command (answer JSON on stdin)")
    p.add_argument("--webhook", metavar="URL", help="--on-detect: POST the answer JSON here")
    p.add_argument("--cooldown", type=_rate, default=10.0, metavar="S",
                   help="--on-detect: at most one trigger per S seconds (default 10)")


def open_frames(args, stop: threading.Event) -> tuple:
    """(Source, items, Options) for args.source; usage errors (no camera, no OpenCV) raise here."""
    from device.sources import registry
    from device.sources.base import Options
    name, where = registry.parse_spec(args.source)
    source = registry.get(name)
    options = Options(stop=stop, size=args.size, fps=args.fps, realtime=args.realtime,
                      reconnects=args.reconnect)
    items = source.open(where, options)
    options.facts.update(spec=args.source, requested={"size": list(args.size) if args.size else None,
                                                      "fps": args.fps})
    return source, items, options


def on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT stop the run cleanly (recording finalised, summary printed)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())


def summary_line(s: dict) -> str:
    st = s["stages_ms"]
    split = ", ".join(f"{k} {st[k]['p50']}" for k in st if st[k]["p50"] is not None)
    lat = s["latency_ms"]
    return (f"{s['frames']} frames, {s['fps']} fps, dropped {s['dropped']}, corrupt {s['corrupt']}, "
            f"failed {s['failed']}; latency p50 {lat['p50']} ms p99 {lat['p99']} ms; stages p50 ms: {split}")


def infer(args, labels: Optional[list]) -> int:
    """Run the pipeline to the end of the source (or a stop); the summary goes to --json's stream
    (last line) and, as one line, to stderr."""
    from device.contract.inputs import load_manifest
    from device.runtimes import registry as runtime
    from device.serving.predictor import Predictor
    from device.video import pipeline, sinks
    if args.inputs or args.watch or args.draw or args.mask_out:
        raise AgentError("--source takes no INPUT arguments, --watch, --draw or --mask_out (--record writes the "
                         "annotated frames)", EXIT_USAGE, "usage")
    stop = threading.Event()
    on_signals(stop)
    source, items, options = open_frames(args, stop)
    pred = Predictor(args.model, runtime.resolve(args.runtime), 1, args.num_threads, load_manifest(args.manifest),
                     labels, args.pixel_scale, args.pixel_offset, args.task, args.threshold, args.iou)
    pipeline.check_model(pred)
    for note in pred.notes:
        sys.stderr.write(f"edgekit-agent: warning: {note}\n")
    outs, recorder = [], None       # the recorder first: closing it adds `recorded` to the summary
    if args.record:
        rate = args.fps or (options.facts.get("delivered") or {}).get("fps")
        recorder = sinks.Recorder(args.record, rate)
        outs.append(recorder)
    if args.on_detect:
        from device.video.trigger import Trigger
        outs.append(Trigger(args.on_detect, args.exec_cmd, args.webhook, args.cooldown))
    if args.json:
        outs.append(sinks.JsonLines(args.json))
    settings = pipeline.Settings(k=args.top_k, max_rate=args.max_rate, max_frames=args.frames,
                                 paced=source.paced or args.realtime, draw=recorder is not None)
    run = pipeline.Pipeline(pred, items, settings, outs, stop)
    error = None
    try:
        error = run.run()
    except AgentError:
        if recorder:
            recorder.abandon()
        raise
    summary = run.stats.summary(options.facts)
    summary["task"] = pred.task.name
    if error:
        summary["error"] = str(error)
    for out in outs:
        out.close(summary)
    sys.stderr.write(f"edgekit-agent: {summary_line(summary)}\n")
    if error:
        sys.stderr.write(f"edgekit-agent: error: {error}\n")
        return error.exit_code
    if summary["failed"] and not summary["frames"]:
        return EXIT_FAILED
    return EXIT_OK
