"""`make mutate`: mutation testing of the code that produces figures or guards safety.

Why: a test suite can pass while the number it guards is wrong. mutmut breaks one small thing
at a time (a `<` into `<=`, a constant, a dropped call) and runs the fast tests that cover the
function; a mutant that survives is either behaviour-identical (equivalent, listed with its
reason in tests/mutation_equivalent.txt) or a hole in the tests.

Each module runs on its own: a scratch copy of the repo under build/mutate/<module>/ with a
setup.cfg that mutates only that file and selects only its tests, so runs stay small on a shared
machine (`nice`, one worker). Writes reports/mutation.md. Not part of CI (minutes per module).

Usage: python scripts/mutate.py [MODULE ...]     (default: every module in MODULES)
       python scripts/mutate.py --collect MODULE   (re-read a finished run's scratch dir, rewrite the report)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutate"
REPORT = ROOT / "reports" / "mutation.md"
EQUIVALENT = ROOT / "tests" / "mutation_equivalent.txt"
COPY = ["device", "host", "deploy", "emuboard", "tests", "profiles", "docs", "scripts",
        "Makefile", "requirements.txt", "README.md"]

# module -> the FAST tests that cover it (declared once; the report and the runs derive from it).
# A module may name only some of its functions (file::func,func): the rest is not figure/safety code.
MODULES = {
    "device/measure/stats.py": ["tests/device/measure/test_figures.py"],
    "device/measure/jobs.py::_time_runs,_warm_up,_measure": ["tests/device/measure/test_figures.py"],
    "device/measure/memory.py": ["tests/device/measure/test_figures.py"],
    "device/measure/isolate.py": ["tests/device/measure/test_isolate_run.py"],
    "device/contract/schema/__init__.py": ["tests/device/contract/test_schema_validator.py", "tests/device/contract/test_schema.py"],
    "host/compare/results.py": ["tests/host/compare/test_compare.py"],
    "host/convert/quantize.py::check_full_int8,graph_summary": ["tests/host/convert/test_int8_check.py"],
    # the board side of a deploy: hash check of uploads and blobs, the request check, the atomic switch
    "deploy/releases/on_board.py::sha256,inventory,check_request,missing_blobs,verify_blobs,link_or_copy,"
    "current_id,commit,_commit,switch_to": ["tests/deploy/releases/test_board_release.py"],
    "deploy/targets/hostkeys.py": ["tests/deploy/targets/test_hostkeys.py"],
    # the new figure/decision code of the second wave: the static memory plan, the search's budget calls
    # (the planner's tests only: the agent.pyz test cannot run a mutated tree's agent)
    "device/profiling/memplan.py::_align,_order,place,live_bytes": ["tests/device/profiling/test_profile.py", "-k",
                                                           "planner or plan_matches"],
    "host/search/decide.py::broken,excess,one_kind,accuracy,select,out_of_reach,time_for_training,closest": ["tests/host/search/test_search_decisions.py"],
    # the service's model hand-over: follow the link, check a release in a child and in place, switch
    "device/serving/swap.py::Follower.check_once,Follower.target,Follower.mark_served,Follower.write_state,"
    "release_loader,self_check,isolated_check": ["tests/device/serving/test_swap.py"],
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", 37: "type check", None: "not checked"}


def _split(spec: str) -> tuple:
    path, _, funcs = spec.partition("::")
    return path, [f for f in funcs.split(",") if f]


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", path.replace(".py", "")).strip("_")


def _prepare(spec: str, tests: list) -> Path:
    """A fresh scratch copy of the repo whose setup.cfg mutates `spec` and runs `tests`."""
    path, _ = _split(spec)
    work = SCRATCH / _slug(path)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, work / name)
    package = path.split("/")[0]
    others = [n + "/" for n in COPY if (ROOT / n).is_dir() and n not in (package, "tests")]
    cfg = ["[mutmut]", f"source_paths = {package}/", f"only_mutate = {path}",
           "also_copy =", *[f"    {o}" for o in others],
           "pytest_add_cli_args_test_selection =", *[f"    {t}" for t in tests],
           "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -x", "    -q",
           "use_git_change_detection = false", "timeout_multiplier = 4.0", "timeout_constant = 5.0", ""]
    (work / "setup.cfg").write_text("\n".join(cfg))
    return work


def _statuses(work: Path, spec: str) -> dict:
    path, funcs = _split(spec)
    meta = work / "mutants" / (path + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    out = {}
    for name, code in codes.items():
        func = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
        func = re.sub(r"^x_|^xǁ[^ǁ]*ǁ", "", func)
        if funcs and func not in {f.rsplit(".", 1)[-1] for f in funcs}:
            continue
        out[name] = STATUS.get(code, "suspicious")
    return out


def _diff(work: Path, mutmut: list, name: str, env: dict) -> str:
    """The mutant's changed line(s), one line, for the report."""
    proc = subprocess.run(mutmut + ["show", name], cwd=work, env=env, capture_output=True, text=True)
    minus = [ln[1:].strip() for ln in proc.stdout.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in proc.stdout.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    if not plus and not minus:
        return "(diff unavailable)"
    return f"`{' / '.join(minus)[:90]}` -> `{' / '.join(plus)[:90]}`"


def _equivalents() -> dict:
    """mutant name -> one-line reason it is behaviour-identical (tests/mutation_equivalent.txt)."""
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name.strip()] = reason.strip()
    return out


def run_module(spec: str, tests: list) -> dict:
    work = _prepare(spec, tests)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", EDGEKIT_QUIET="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("MUTANT_UNDER_TEST", None)
    mutmut = [sys.executable, "-m", "mutmut"]
    t0 = time.monotonic()
    log = work / "mutmut.log"
    path, funcs = _split(spec)
    dotted = path[:-3].replace("/", ".").removesuffix(".__init__")
    # just the named functions' mutants; Class.method is how mutmut names a method's: xǁClassǁmethod
    only = [f"{dotted}.xǁ{f.replace('.', 'ǁ')}__mutmut_*" if "." in f else f"{dotted}.x_{f}__mutmut_*"
            for f in funcs]
    with open(log, "w") as f:
        proc = subprocess.run(["nice", "-n", "10"] + mutmut + ["run", "--max-children", "1", *only], cwd=work,
                              env=env, stdout=f, stderr=subprocess.STDOUT)
    secs = time.monotonic() - t0
    statuses = _statuses(work, spec)
    error = None
    if proc.returncode != 0 or not statuses or all(s == "not checked" for s in statuses.values()):
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        error = f"mutmut run exited {proc.returncode}: " + " | ".join(tail)[-400:]
    survivors = {n: _diff(work, mutmut, n, env) for n, s in statuses.items() if s in ("survived", "timeout")}
    result = {"spec": spec, "tests": tests, "secs": secs, "statuses": statuses, "diffs": survivors,
              "error": error}
    (SCRATCH / (_slug(_split(spec)[0]) + ".json")).write_text(json.dumps(result, indent=1))
    return result


def _row(r: dict, eq: dict) -> tuple:
    st = r["statuses"]
    killed = sum(s == "killed" for s in st.values())
    survived = [n for n, s in st.items() if s == "survived"]
    timeout = sum(s == "timeout" for s in st.values())
    other = sum(s not in ("killed", "survived", "timeout") for s in st.values())
    equivalent = [n for n in survived if n in eq]
    real = len(st) - len(equivalent)
    score = 100.0 * (killed + timeout) / real if real else 100.0
    return killed, len(survived), timeout, other, len(equivalent), score


def write_report(results: list) -> None:
    eq = _equivalents()
    lines = ["# Mutation testing (`make mutate`)", "",
             f"mutmut {_mutmut_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"run time {sum(r['secs'] for r in results) / 60:.1f} min (nice, one worker, 2-core shared machine).", "",
             "Score = (killed + timed out) / (all mutants - equivalent survivors). Target >= 90 % per module.",
             "", "| module | tests | killed | survived | timed out | other | equivalent | score | time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        k, s, t, o, e, score = _row(r, eq)
        lines.append(f"| `{r['spec']}` | {', '.join('`%s`' % x for x in r['tests'])} | {k} | {s} | {t} | {o} | "
                     f"{e} | {score:.0f} % | {r['secs']:.0f} s |")
    lines += ["", "## Survivors and other non-killed mutants", ""]
    for r in results:
        if r["error"]:
            lines.append(f"- `{r['spec']}`: **run failed**: {r['error']}")
        for name, status in sorted(r["statuses"].items()):
            if status == "killed":
                continue
            why = eq.get(name)
            tag = f"equivalent: {why}" if why else "**not equivalent: a test is missing**"
            if status != "survived":
                tag = status
            lines.append(f"- `{name}` ({status}) {r['diffs'].get(name, '')} — {tag}")
    lines += ["", "Reproduce one: `cd build/mutate/<module> && ../../../.venv/bin/mutmut show NAME`.", ""]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines))


def _mutmut_version() -> str:
    from importlib.metadata import version
    return version("mutmut")


def collect(spec: str, tests: list) -> dict:
    """Re-read a finished (or interrupted) run in its scratch directory without running mutmut."""
    work = SCRATCH / _slug(_split(spec)[0])
    env = dict(os.environ)
    env.pop("MUTANT_UNDER_TEST", None)
    statuses = _statuses(work, spec)
    meta = work / "mutants" / (_split(spec)[0] + ".meta")
    secs = meta.stat().st_mtime - (work / "setup.cfg").stat().st_mtime if meta.exists() else 0.0
    diffs = {n: _diff(work, [sys.executable, "-m", "mutmut"], n, env) for n, st in statuses.items()
             if st in ("survived", "timeout")}
    result = {"spec": spec, "tests": tests, "secs": secs, "statuses": statuses, "diffs": diffs,
              "error": None if statuses else "no mutmut results in " + str(work)}
    (SCRATCH / (_slug(_split(spec)[0]) + ".json")).write_text(json.dumps(result, indent=1))
    return result


def main(argv: list) -> int:
    if argv[:1] == ["--collect"]:      # rebuild a module's result (and the report) from its scratch dir
        for spec, tests in MODULES.items():
            if spec in argv[1:] or _split(spec)[0] in argv[1:]:
                collect(spec, tests)
        argv = ["--report-only"]
    if argv == ["--report-only"]:
        results = [json.loads(p.read_text()) for p in (SCRATCH / (_slug(_split(s)[0]) + ".json") for s in MODULES)
                   if p.exists()]
        write_report(results)
        return 0
    wanted = argv or list(MODULES)
    unknown = [w for w in wanted if not any(s == w or _split(s)[0] == w for s in MODULES)]
    if unknown:
        print(f"mutate: unknown module {unknown[0]!r} (known: {', '.join(_split(s)[0] for s in MODULES)})",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    for spec, tests in MODULES.items():
        if spec in wanted or _split(spec)[0] in wanted:
            print(f"mutate: {spec} with {' '.join(tests)}", flush=True)
            r = run_module(spec, tests)
            k, s, t, o, e, score = _row(r, _equivalents())
            print(f"mutate:   {k} killed, {s} survived ({e} equivalent), {t} timed out, {o} other, "
                  f"{score:.0f} %, {r['secs']:.0f} s" + (f"  ERROR {r['error']}" if r["error"] else ""), flush=True)
    # The report covers every module with a stored result, so one module can be re-run alone.
    results = [json.loads(p.read_text()) for p in (SCRATCH / (_slug(_split(s)[0]) + ".json") for s in MODULES)
               if p.exists()]
    write_report(results)
    print(f"mutate: wrote {REPORT.relative_to(ROOT)}")
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
