"""Measure memory and speed of pickling, patched against stock CPython.

  bench                  every scenario at --size 512M, then the
                         small-object speed benchmarks under pyperf
  bench --quick          a 64 MiB payload and fewer pyperf values
                         (under two minutes once the venvs exist)
  bench --only memory    only the large-payload scenarios (or: speed)
  bench --size 2G        another payload size; sizes over 512 MiB wait for
                         /tmp/bigmem.lock, which heavy runs share
  bench --publish        also keep the results in docs/bench/<line>/ and
                         the table in README.md, between the markers
                         <!-- bench <line> --> and <!-- end bench <line> -->

Each measurement runs in a fresh process of each interpreter compared:
for 3.7, the patched build (its C pickler and its Python pickler), the
same base built the same way without the series (`tools build --stock`,
when it exists), stock 3.7 (C and Python), stock 3.7 with the pickle5
backport from PyPI, and the newest installed upstream CPython; with
--base 3.13, the patched 3.13 against stock 3.13.  The stock interpreters
other than `build --stock` come from pyenv and run in venvs under
build/bench/venvs/ made from requirements/bench-*.txt.

Memory: extra peak RSS over the payload, in payload sizes, and throughput.
Speed: small-object pickle/unpickle time relative to a baseline (> 1 is
faster).  The patched columns' baseline is the same-build stock
interpreter, so that their ratios measure the series alone; without it,
it is pyenv's stock release, built differently, and the bench says so.
The other columns' baseline is pyenv's stock release; the table's notes
say which baseline each ratio uses.  The targets of the issue are printed
beside the numbers and marked "!" where a patched column misses them;
nothing is asserted.
A scenario an interpreter cannot run yet (no protocol 5, no numpy) is
reported as "n/a (reason)".

Results, per line: build/bench/<line>/results.json, memory.png and
speed.png (the plots need matplotlib: pip install -r requirements/dev.txt),
the pyperf files in speed/ and the logs in logs/ beside them.
"""

import contextlib
import datetime
import fcntl
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import bench_scenarios as scenarios
from . import providers
from .build import PIP_TARGET, install_paths
from .errors import Failure, UsageError
from .which import interpreter
from .workspace import DEFAULT_LINE

RUNNER = Path(scenarios.__file__).resolve()
MIB = 1 << 20
DEFAULT_SIZE = 512 * MIB
QUICK_SIZE = 64 * MIB
MIN_SIZE = 2 * MIB
# Runs whose payload is larger than this take the machine's big-memory lock:
# a scenario can hold four payloads at once.
HEAVY_SIZE = 512 * MIB
BIGMEM_LOCK = "/tmp/bigmem.lock"
SPEED_TARGET = 0.98
SCHEMA = 1
REQUIREMENTS = {"3.7": "bench-py37.txt", "upstream": "bench-upstream.txt"}
# Installed with the host pip into the patched interpreter (numpy is there
# already, and its pickle5 module is the standard pickle).
PATCHED_EXTRAS = ("pyperf", "psutil")
# (rounds, pyperf worker processes a round, one pyperf run per benchmark,
# further pyperf options).  The full run has pyperf's default 20 processes
# of 3 values each, in 4 rounds; --quick has 2 processes of 3 shorter
# values, all benchmarks of a column in one pyperf run to save start-ups.
SPEED_FULL = (4, 5, True, [])
SPEED_QUICK = (1, 2, False, ["--values", "3", "--warmups", "1",
                             "--min-time", "0.05"])
# A 1-minute load average above this share of the CPUs before the bench
# starts means other work competes with the speed benchmarks.
BUSY_LOAD = 0.5
CELL_STATES = ("ok", "n/a", "failed")
SHORT_TITLES = {
    "dump-bytearray-file": "dump bytearray -> file",
    "dumps-bytearray": "dumps bytearray",
    "dump-ascii-str-file": "dump ASCII str -> file",
    "dump-nonascii-str-file": "dump non-ASCII str -> file",
    "load-bytes-file": "load bytes <- file",
    "oob-picklebuffer": "out-of-band PickleBuffer",
    "oob-numpy": "out-of-band numpy array",
}


def add_arguments(parser):
    parser.add_argument("--size", metavar="SIZE",
                        help="payload size, e.g. 512M or 2G (default 512M; "
                             "64M with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller payload, fewer pyperf values")
    parser.add_argument("--only", choices=("memory", "speed"),
                        help="run only the memory scenarios or only the "
                             "speed benchmarks")
    parser.add_argument("--publish", action="store_true",
                        help="also copy the results and plots to "
                             "docs/bench/<line>/ and the table into "
                             "README.md")


def parse_size(text):
    match = re.match(r"^(\d+)\s*([KMG]?)(I?B)?$", text.strip().upper())
    if not match:
        raise UsageError("--size %r is not a size like 512M or 2G" % text)
    size = int(match.group(1)) << {"": 0, "K": 10, "M": 20,
                                   "G": 30}[match.group(2)]
    if size < MIN_SIZE:
        raise UsageError("--size %s is below the smallest useful payload, "
                         "%s" % (text, human_size(MIN_SIZE)))
    return size


def human_size(size):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return "%d %s" % (size >> shift, unit)
    return "%d bytes" % size


# -- the interpreters compared ------------------------------------------------

@dataclass
class Column:
    key: str
    label: str
    python: str
    module: str
    impl: str
    role: str           # patched, same-build, stock, backport or upstream
    baseline: str       # the column speed ratios are taken against
    version: str = ""
    protocol: int = 0
    status: str = "ok"  # or n/a when the column cannot run at all
    short: str = ""
    reason: str = ""
    pyperf: str = ""
    numpy: str = ""
    out_of_band: str = ""

    @property
    def usable(self):
        return self.status == "ok"


def bench_dir(ws):
    """Shared by the lines: the venvs of the stock interpreters."""
    return ws.root / "build" / "bench"


def results_dir(ws, line):
    """One per line, so that benching 3.13 keeps the 3.7 results."""
    return bench_dir(ws) / line.name


def child_env():
    """The environment of the measured processes: no PYTHON* settings of
    ours may change how they import."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}


def python_version(python):
    proc = subprocess.run([str(python), "-c", "import platform; "
                           "print(platform.python_version())"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, env=child_env())
    return proc.stdout.strip() if proc.returncode == 0 else None


def pyenv_versions():
    """(version tuple, python) of pyenv's CPython 3 releases, oldest
    first."""
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
    except FileNotFoundError:
        return []
    found = []
    if not root or not os.path.isdir(os.path.join(root, "versions")):
        return found
    for name in os.listdir(os.path.join(root, "versions")):
        match = re.match(r"^3\.(\d+)\.(\d+)$", name)
        if not match:
            continue
        python = os.path.join(root, "versions", name, "bin",
                              "python3.%s" % match.group(1))
        if os.access(python, os.X_OK):
            found.append(((3, int(match.group(1)), int(match.group(2))),
                          python))
    return sorted(found)


def read_requirements(path):
    lines = []
    for text in path.read_text().splitlines():
        text = text.split("#", 1)[0].strip()
        if text:
            lines.append(text)
    return lines


def ensure_venv(ws, base_python, requirements, logs, out):
    """A venv of BASE_PYTHON with REQUIREMENTS, made once and reused.

    Returns (python, problem): the venv's python, or the base interpreter
    and a sentence saying why the venv could not be made."""
    version = python_version(base_python)
    if version is None:
        return None, "%s does not run" % base_python
    venv = bench_dir(ws) / "venvs" / ("cpython-" + version)
    python = venv / "bin" / "python"
    stamp = venv / "zerocopy-bench-requirements.txt"
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python), None
    log = logs / ("venv-cpython-%s.log" % version)
    out("preparing %s (pip install -r %s; log: %s)"
        % (venv, requirements.relative_to(ws.root), log))
    with open(log, "w") as f:
        steps = []
        if not python.exists():
            steps.append([str(base_python), "-m", "venv", str(venv)])
        steps.append([str(python), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", "--no-input",
                      "-r", str(requirements)])
        for step in steps:
            f.write("$ %s\n" % " ".join(map(shlex.quote, step)))
            f.flush()
            proc = subprocess.run(step, stdout=f, stderr=subprocess.STDOUT,
                                  env=child_env())
            if proc.returncode != 0:
                return str(base_python), (
                    "could not prepare the venv %s (see %s): measuring the "
                    "bare %s" % (venv, log, base_python))
    stamp.write_text(wanted)
    return str(python), None


def ensure_patched_extras(ws, line, python, logs, out, who="patched"):
    """pyperf (and psutil) in an interpreter `tools build` made (WHO: the
    patched one, or "stock-build"), installed the way it installs numpy:
    the host pip, --target and the line's platform tags.  Returns a
    problem sentence or None."""
    path = ws.root / "requirements" / REQUIREMENTS.get(
        line.name, REQUIREMENTS["upstream"])
    pins = [r for r in read_requirements(path)
            if re.split(r"[=<>!~;\s]", r, 1)[0].lower() in PATCHED_EXTRAS]
    want = dict(r.split("==", 1) for r in pins if "==" in r)
    script = ("import pyperf, psutil; print(pyperf.__version__, "
              "psutil.__version__)")
    proc = subprocess.run([python, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True,
                          env=child_env())
    if proc.returncode == 0 and proc.stdout.split() == [
            want.get("pyperf"), want.get("psutil")]:
        return None
    target = install_paths(python)[1]
    log = logs / ("%s-pyperf.log" % who)
    out("installing %s into %s (log: %s)" % (", ".join(pins), python, log))
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "--no-input", "--upgrade",
             "--only-binary=:all:", "--no-deps", "--ignore-requires-python",
             "--target", str(target)] + PIP_TARGET[line.name] + pins,
            stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        return "could not install pyperf into %s (see %s)" % (python, log)
    return None


def stock_build(ws, line):
    """The record of `tools build --stock`, when its interpreter exists."""
    record = ws.read_interpreter(line, variant="stock")
    if record is None or not Path(record["python"]).exists():
        return None
    return record


def different_builds_note(line):
    """What the bench says when there is no same-build stock interpreter."""
    return ("the patched columns' speed ratios compare different builds "
            "(the patched %s built here against pyenv's stock release): "
            "`python3 -m tools build --stock%s` gives a like-for-like baseline"
            % (line.reference, "" if line.name == DEFAULT_LINE
               else " --base " + line.name))


def patched_columns(patched, same_build):
    """The patched columns and, when SAME_BUILD (the stock interpreter of
    `tools build --stock`) is given, its columns, which then are the
    patched columns' baselines.  The same-build columns themselves are
    compared with pyenv's stock release: their ratios show what the build
    alone changes."""
    prefix = "build-" if same_build else "stock-"
    columns = [
        Column("patched-c", "patched C", patched, "pickle", "c", "patched",
               prefix + "c"),
        Column("patched-py", "patched Py", patched, "pickle", "py",
               "patched", prefix + "py"),
    ]
    if same_build:
        columns += [
            Column("build-c", "stock C (same build)", same_build, "pickle",
                   "c", "same-build", "stock-c"),
            Column("build-py", "stock Py (same build)", same_build, "pickle",
                   "py", "same-build", "stock-py"),
        ]
    return columns


def plan_columns(ws, line, record, logs, out, speed):
    """The columns of the table, before probing them."""
    patched = record["python"]
    same = stock_build(ws, line)
    same_python = same["python"] if same else None
    notes = []
    if speed:
        built = [(patched, "patched")]
        if same_python:
            built.append((same_python, "stock-build"))
        for python, who in built:
            problem = ensure_patched_extras(ws, line, python, logs, out, who)
            if problem:
                notes.append(problem)
    columns = patched_columns(patched, same_python)
    stock_found = providers.find_installed(line)
    if speed and stock_found and same is None:
        notes.append(different_builds_note(line))
    requirements = ws.root / "requirements" / REQUIREMENTS.get(
        line.name, REQUIREMENTS["upstream"])
    if stock_found:
        stock, problem = ensure_venv(ws, stock_found[0], requirements, logs,
                                     out)
        if problem:
            notes.append(problem)
    else:
        stock = None
    columns += [
        Column("stock-c", "stock C", stock, "pickle", "c", "stock",
               "stock-c"),
        Column("stock-py", "stock Py", stock, "pickle", "py", "stock",
               "stock-py"),
    ]
    if line.name == "3.7":
        columns.append(Column("pickle5-c", "stock+pickle5", stock, "pickle5",
                              "c", "backport", "stock-c"))
        newest = [found for found in pyenv_versions()
                  if found[0][:2] > (3, 7)]
        upstream = None
        if newest:
            upstream, problem = ensure_venv(
                ws, newest[-1][1], ws.root / "requirements" /
                REQUIREMENTS["upstream"], logs, out)
            if problem:
                notes.append(problem)
        columns.append(Column("upstream-c", "upstream C", upstream, "pickle",
                              "c", "upstream", "stock-c"))
    for column in columns:
        if column.python is None:
            column.status = "n/a"
            if column.role == "upstream":
                column.short = "not installed"
                column.reason = ("no CPython release newer than 3.7 "
                                 "installed with pyenv")
            else:
                column.short = "no stock %s" % line.name
                column.reason = ("no installed CPython %s found (pyenv, "
                                 "PATH)" % line.name)
    return columns, notes


def run_runner(python, args, log, timeout):
    """Run the scenario runner; its last stdout line is a JSON object."""
    command = [python, str(RUNNER)] + [str(a) for a in args]
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(map(shlex.quote, command)))
        f.flush()
        try:
            proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=f,
                                  text=True, timeout=timeout, env=child_env())
        except subprocess.TimeoutExpired:
            return {"status": "failed", "short": "timeout",
                    "reason": "no answer within %d s (see %s)"
                              % (timeout, log)}
        f.write(proc.stdout)
    lines = [text for text in proc.stdout.splitlines()
             if text.startswith("{")]
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
        if isinstance(result, dict) and result.get("status") in CELL_STATES:
            if result["status"] == "failed":
                result.setdefault("short", "error")
                result["reason"] = "%s (see %s)" % (result.get("reason"), log)
            return result
    if proc.returncode < 0:
        short = "signal %d" % -proc.returncode
    else:
        short = "exit %d" % proc.returncode
    return {"status": "failed", "short": short,
            "reason": "the runner ended with %s and no result (see %s)"
                      % (short, log)}


def probe_columns(columns, logs):
    for column in columns:
        if not column.usable:
            continue
        log = logs / ("probe-%s.log" % column.key)
        log.write_text("")
        info = run_runner(column.python, ["probe", "--module", column.module,
                                          "--impl", column.impl], log,
                          timeout=120)
        column.version = info.get("python") or ""
        column.pyperf = info.get("pyperf") or ""
        column.numpy = info.get("numpy") or ""
        if info["status"] != "ok":
            column.status = info["status"]
            column.short = info.get("short", "")
            column.reason = info.get("reason", "")
            continue
        column.protocol = info["protocol"]
        column.out_of_band = info.get("out_of_band") or ""
        if info.get("memory_method"):
            column.status = "n/a"
            column.short = "no VmHWM"
            column.reason = info["memory_method"]


def label_columns(columns):
    """Name the columns after the versions the probes found."""
    for column in columns:
        version = column.version or column.role
        kind = "Py" if column.impl == "py" else "C"
        if column.role == "patched":
            column.label = "patched %s %s" % (version, kind)
        elif column.role == "same-build":
            column.label = "stock %s %s (same build)" % (version, kind)
        elif column.role == "backport":
            column.label = "%s+pickle5" % version
        else:
            column.label = "%s %s" % (version, kind)


# -- memory -------------------------------------------------------------------

@contextlib.contextmanager
def heavy_lock(size, out):
    """Hold /tmp/bigmem.lock around runs with a payload over 512 MiB.

    When this process already has the lock file open (run under
    `flock /tmp/bigmem.lock ...`), its caller holds the lock."""
    if size <= HEAVY_SIZE:
        yield
        return
    lock = os.path.realpath(BIGMEM_LOCK)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) == lock:
                yield
                return
        except OSError:
            continue
    with open(BIGMEM_LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out("waiting for %s: another heavy run holds it" % BIGMEM_LOCK)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def column_na(column):
    return {"status": column.status, "short": column.short,
            "reason": column.reason}


def memory_cell(column, name, size, workdir, logs):
    if not column.usable:
        return column_na(column)
    log = logs / ("memory-%s-%s-%d.log" % (column.key, name, size))
    log.write_text("")
    # About 2 MB/s would be very slow even for the Python pickler.
    timeout = 120 + size // 2000000
    common = ["--module", column.module, "--impl", column.impl,
              "--size", size, "--dir", workdir]
    try:
        if name in scenarios.NEEDS_PREPARE:
            prepared = run_runner(column.python, ["prepare", name] + common,
                                  log, timeout)
            if prepared["status"] != "ok":
                return prepared
        return run_runner(column.python, ["memory", name] + common, log,
                          timeout)
    finally:
        for leftover in Path(workdir).iterdir():
            leftover.unlink()


def run_memory(directory, columns, size, logs, out):
    scenario_rows = []
    workdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=str(directory)))
    try:
        with heavy_lock(size, out):
            for name, title, limit in scenarios.SCENARIOS:
                out("memory: %s, %s (%d interpreters)"
                    % (title, human_size(size), len(columns)))
                cells = {}
                for column in columns:
                    cell = memory_cell(column, name, size, workdir, logs)
                    if name in scenarios.OUT_OF_BAND and \
                            cell["status"] == "ok" and \
                            size > scenarios.OOB_REFERENCE_SIZE:
                        small = memory_cell(column, name,
                                            scenarios.OOB_REFERENCE_SIZE,
                                            workdir, logs)
                        if small["status"] == "ok":
                            cell["reference"] = {
                                "size": small["payload_bytes"],
                                "best_seconds": small["best_seconds"],
                                "extra_ratio": small["extra_ratio"]}
                            cell["time_ratio"] = (
                                cell["best_seconds"] / small["best_seconds"]
                                if small["best_seconds"] > 0 else None)
                    cells[column.key] = cell
                scenario_rows.append({
                    "name": name, "title": title, "limit": limit,
                    "target_max": limit + scenarios.SLACK, "cells": cells})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"size": size, "scenarios": scenario_rows}


# -- speed --------------------------------------------------------------------

def run_speed(directory, columns, quick, logs, out):
    """The small-object benchmarks under pyperf, in rounds.

    Each round runs every benchmark on every column in turn, a few pyperf
    worker processes each, so that a change in the machine's load while
    the bench runs spreads over all columns instead of hitting one.  The
    first round calibrates the loop counts; later rounds reuse them."""
    speed_dir = directory / "speed"
    speed_dir.mkdir(parents=True, exist_ok=True)
    usable = []
    state = {}
    for column in columns:
        path = speed_dir / ("%s.json" % column.key)
        if path.exists():
            path.unlink()
        (logs / ("speed-%s.log" % column.key)).write_text("")
        if not column.usable:
            state[column.key] = column_na(column)
        elif not column.pyperf:
            state[column.key] = {
                "status": "n/a", "short": "no pyperf",
                "reason": "pyperf is not installed in %s" % column.python}
        else:
            usable.append(column)
    rounds, processes, each, options = SPEED_QUICK if quick else SPEED_FULL
    groups = scenarios.SPEED_BENCHMARKS if each else [None]
    loops = {}
    for round_number in range(1, rounds + 1):
        for name in groups:
            out("speed: %s, round %d of %d (%d interpreters)"
                % (name or "all benchmarks", round_number, rounds,
                   len(usable)))
            for column in usable:
                if column.key in state:
                    continue
                path = speed_dir / ("%s.json" % column.key)
                log = logs / ("speed-%s.log" % column.key)
                command = [column.python, str(RUNNER), "speed", "--module",
                           column.module, "--impl", column.impl, "--append",
                           str(path), "--processes", str(processes)]
                if name:
                    command += ["--bench", name]
                command += options
                if (column.key, name) in loops:
                    command.append("--loops=%d" % loops[column.key, name])
                with open(log, "a") as f:
                    f.write("$ %s\n" % " ".join(map(shlex.quote, command)))
                    f.flush()
                    proc = subprocess.run(command, stdout=f,
                                          stderr=subprocess.STDOUT,
                                          env=child_env())
                if proc.returncode != 0:
                    state[column.key] = {
                        "status": "failed", "short": "pyperf failed",
                        "reason": "pyperf ended with status %d on %s (see %s)"
                                  % (proc.returncode, name or "the benchmarks",
                                     log)}
                elif name and (column.key, name) not in loops:
                    calibrated = pyperf_loops(path, name)
                    if calibrated:
                        loops[column.key, name] = calibrated
    timings = {}
    for column in usable:
        path = speed_dir / ("%s.json" % column.key)
        if column.key not in state and path.exists():
            timings[column.key] = read_pyperf(path)
    return speed_section(columns, state, timings)


def pyperf_loops(path, name):
    """The loop count pyperf calibrated for benchmark NAME in PATH."""
    with open(path) as f:
        suite = json.load(f)
    for bench in suite.get("benchmarks", []):
        metadata = dict(suite.get("metadata", {}), **bench.get("metadata", {}))
        if metadata.get("name") == name and metadata.get("loops"):
            return int(metadata["loops"])
    return None


def read_pyperf(path):
    """{benchmark: (median, mean, stdev, number of values)} of a pyperf
    file.  Ratios use the median: other processes on the machine make a
    few values much slower, and the median is the steadier figure."""
    with open(path) as f:
        suite = json.load(f)
    result = {}
    common = suite.get("metadata", {})
    for bench in suite.get("benchmarks", []):
        name = bench.get("metadata", {}).get("name") or common.get("name")
        values = [v for run in bench.get("runs", [])
                  for v in run.get("values", [])]
        if not name or not values:
            continue
        mean = math.fsum(values) / len(values)
        spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) /
                           (len(values) - 1)) if len(values) > 1 else 0.0
        result[name] = (median(values), mean, spread, len(values))
    return result


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def speed_section(columns, state, timings):
    """Turn per-column timings into cells with ratios to the baselines."""
    by_key = {c.key: c for c in columns}
    rows = []
    for name in scenarios.SPEED_BENCHMARKS:
        cells = {}
        for column in columns:
            if column.key in state:
                cells[column.key] = dict(state[column.key])
                continue
            timing = timings.get(column.key, {}).get(name)
            if timing is None:
                cells[column.key] = {"status": "failed", "short": "no value",
                                     "reason": "pyperf wrote no value for %s"
                                               % name}
                continue
            cells[column.key] = {"status": "ok", "median_seconds": timing[0],
                                 "mean_seconds": timing[1],
                                 "stdev_seconds": timing[2],
                                 "values": timing[3], "ratio": None,
                                 "baseline": column.baseline}
        for column in columns:
            cell = cells[column.key]
            base = cells.get(column.baseline)
            if cell["status"] != "ok":
                continue
            if base is None or base["status"] != "ok":
                cell["ratio_problem"] = "no %s value" % (
                    by_key[column.baseline].label
                    if column.baseline in by_key else column.baseline)
                continue
            cell["ratio"] = base["median_seconds"] / cell["median_seconds"]
        rows.append({"name": name, "cells": cells})
    geomean = {}
    for column in columns:
        ratios = [row["cells"][column.key].get("ratio") for row in rows]
        if ratios and all(r for r in ratios):
            geomean[column.key] = math.exp(
                math.fsum(math.log(r) for r in ratios) / len(ratios))
        else:
            geomean[column.key] = None
    return {"benchmarks": rows, "geometric_mean": geomean,
            "target": {"min_ratio": SPEED_TARGET,
                       "not_slower_than": "pickle5-c"}}


# -- targets ------------------------------------------------------------------

def memory_misses(row, cell):
    return cell.get("status") == "ok" and \
        cell["extra_ratio"] > row["target_max"]


def speed_misses(row, column_key, cell):
    if cell.get("status") != "ok" or cell.get("ratio") is None:
        return False
    if cell["ratio"] < SPEED_TARGET:
        return True
    backport = row["cells"].get("pickle5-c")
    if column_key == "patched-c" and backport and \
            backport.get("ratio") is not None:
        return cell["ratio"] < backport["ratio"]
    return False


def memory_target_text(row):
    if row["name"] in scenarios.OUT_OF_BAND:
        return "< %.2fx" % scenarios.SLACK
    return "<= %.2fx (limit %gx)" % (row["target_max"], row["limit"])


# -- output -------------------------------------------------------------------

def format_seconds(seconds):
    if seconds >= 1:
        return "%.2f s" % seconds
    if seconds >= 1e-3:
        return "%.1f ms" % (seconds * 1e3)
    return "%.0f us" % (seconds * 1e6)


def failure_text(cell):
    if cell.get("status") == "n/a":
        return "n/a (%s)" % (cell.get("short") or "unsupported")
    return "FAILED (%s)" % (cell.get("short") or "error")


def format_table(doc):
    """The text table of a results document."""
    columns = doc["columns"]
    keys = [c["key"] for c in columns]
    patched = {c["key"] for c in columns if c["role"] == "patched"}
    header = ["scenario"] + [c["label"] for c in columns] + ["target"]
    rows = []        # lists of cells, or a str for a section title
    memory = doc.get("memory")
    if memory:
        rows.append("extra peak RSS over the payload, in payload sizes "
                    "(payload %s)" % human_size(memory["size"]))
        for row in memory["scenarios"]:
            cells = []
            for key in keys:
                cell = row["cells"][key]
                if cell["status"] != "ok":
                    cells.append(failure_text(cell))
                    continue
                text = "%+.2fx" % cell["extra_ratio"]
                if key in patched and memory_misses(row, cell):
                    text += " !"
                cells.append(text)
            rows.append([SHORT_TITLES.get(row["name"], row["name"])] + cells +
                        [memory_target_text(row)])
        rows.append("throughput in MB/s (10^6 bytes); out-of-band: best "
                    "time, and its ratio to the time at %s"
                    % human_size(scenarios.OOB_REFERENCE_SIZE))
        for row in memory["scenarios"]:
            oob = row["name"] in scenarios.OUT_OF_BAND
            cells = []
            for key in keys:
                cell = row["cells"][key]
                if cell["status"] != "ok":
                    cells.append(failure_text(cell))
                elif oob:
                    text = format_seconds(cell["best_seconds"])
                    if cell.get("time_ratio") is not None:
                        text += " (x%.1f)" % cell["time_ratio"]
                    cells.append(text)
                else:
                    cells.append("%.0f" % cell["mb_per_s"])
            rows.append([SHORT_TITLES.get(row["name"], row["name"])] + cells +
                        ["time independent of size" if oob else ""])
    speed = doc.get("speed")
    if speed:
        if mixed_baselines(columns):
            rows.append("small objects: speed relative to each column's "
                        "baseline (> 1 is faster; the baselines are named "
                        "below the table)")
        else:
            base = {c["key"]: c["baseline"] for c in columns}
            labels = {c["key"]: c["label"] for c in columns}
            rows.append("small objects: speed relative to %s (> 1 is faster)"
                        % " / ".join(sorted({labels.get(base[k], base[k])
                                             for k in keys})))
        target = ">= %.2fx" % SPEED_TARGET
        if "pickle5-c" in keys:
            target += ", C >= pickle5"
        for row in speed["benchmarks"]:
            cells = []
            for key in keys:
                cell = row["cells"][key]
                if cell["status"] != "ok":
                    cells.append(failure_text(cell))
                elif cell.get("ratio") is None:
                    cells.append(format_seconds(cell["median_seconds"]))
                else:
                    text = "%.2fx" % cell["ratio"]
                    if key in patched and speed_misses(row, key, cell):
                        text += " !"
                    cells.append(text)
            rows.append([row["name"]] + cells + [target])
        rows.append(["geometric mean"] + [
            "%.2fx" % speed["geometric_mean"][k]
            if speed["geometric_mean"].get(k) else "-" for k in keys] + [""])
    rows.append(["protocol"] + [str(c["protocol"]) if c.get("protocol")
                                else "-" for c in columns] + [""])
    widths = [len(h) for h in header]
    for row in rows:
        if isinstance(row, list):
            widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = [format_row(header, widths),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        if isinstance(row, str):
            lines.append(row + ":")
        else:
            lines.append(format_row(row, widths))
    lines.extend(footnotes(doc))
    return "\n".join(lines)


def format_row(cells, widths):
    first = cells[0].ljust(widths[0])
    middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])]
    return "  ".join([first] + middle + [cells[-1]]).rstrip()


def mixed_baselines(columns):
    """Whether some speed ratios are taken against another kind of
    interpreter (the same-build stock one) than the others."""
    roles = {c["key"]: c["role"] for c in columns}
    return len({roles.get(c["baseline"]) for c in columns}) > 1


def baseline_groups(columns):
    """{baseline label: [labels of the columns whose speed ratios are
    taken against it]}, in column order; a baseline's own column (always
    1.00x) is left out of its list."""
    labels = {c["key"]: c["label"] for c in columns}
    groups = {}
    for column in columns:
        base = labels.get(column["baseline"], column["baseline"])
        where = groups.setdefault(base, [])
        if column["key"] != column["baseline"]:
            where.append(column["label"])
    return groups


def footnotes(doc):
    """The legend, the speed baselines when the columns do not all share
    them, then each reason for n/a or FAILED with its columns."""
    cells = []
    for row in (doc.get("memory") or {}).get("scenarios", []):
        cells.extend(row["cells"].items())
    for row in (doc.get("speed") or {}).get("benchmarks", []):
        cells.extend(row["cells"].items())
    labels = {c["key"]: c["label"] for c in doc["columns"]}
    reasons = {}
    for key, cell in cells:
        if cell.get("status") in ("n/a", "failed"):
            where = reasons.setdefault(
                (failure_text(cell), cell.get("reason", "")), [])
            if labels[key] not in where:
                where.append(labels[key])
    lines = ['"!": a patched column misses the target of the issue.']
    if doc.get("speed") and mixed_baselines(doc["columns"]):
        for base, where in baseline_groups(doc["columns"]).items():
            if where:
                lines.append("speed ratios against %s: %s"
                             % (base, ", ".join(where)))
        if "pickle5-c" in labels:
            lines.append('"C >= pickle5" compares the ratios of the patched '
                         'C column and of pickle5, each against its own '
                         'baseline.')
    for (text, reason), where in reasons.items():
        lines.append("%s in %s: %s" % (text, ", ".join(where), reason))
    return lines


def schema_problems(doc):
    """What is wrong with a results document (empty when it is sound)."""
    problems = []
    for field_name in ("schema", "line", "size", "quick", "columns",
                       "memory", "speed", "failures", "wall_seconds"):
        if field_name not in doc:
            problems.append("no %r" % field_name)
    if problems:
        return problems
    if doc["schema"] != SCHEMA:
        problems.append("schema %r is not %d" % (doc["schema"], SCHEMA))
    keys = []
    for column in doc["columns"]:
        for field_name in ("key", "label", "python", "module", "impl",
                           "role", "baseline", "status"):
            if field_name not in column:
                problems.append("column without %r" % field_name)
        keys.append(column.get("key"))
    sections = []
    if doc["memory"] is not None:
        for row in doc["memory"].get("scenarios", []):
            sections.append(("memory " + str(row.get("name")), row))
            if row.get("name") not in scenarios.SCENARIO_NAMES:
                problems.append("unknown scenario %r" % row.get("name"))
    if doc["speed"] is not None:
        for row in doc["speed"].get("benchmarks", []):
            sections.append(("speed " + str(row.get("name")), row))
    required = {"memory": ("extra_ratio", "extra_bytes", "rss_before", "peak",
                           "seconds", "mb_per_s", "payload_bytes",
                           "protocol"),
                "speed": ("median_seconds", "mean_seconds", "values",
                          "ratio", "baseline")}
    for where, row in sections:
        cells = row.get("cells", {})
        if sorted(cells) != sorted(keys):
            problems.append("%s: cells %s, columns %s"
                            % (where, sorted(cells), sorted(keys)))
        for key, cell in cells.items():
            status = cell.get("status")
            if status not in CELL_STATES:
                problems.append("%s/%s: status %r" % (where, key, status))
            elif status == "ok":
                for field_name in required[where.split()[0]]:
                    if field_name not in cell:
                        problems.append("%s/%s: no %r"
                                        % (where, key, field_name))
            elif not cell.get("reason"):
                problems.append("%s/%s: %s without a reason"
                                % (where, key, status))
    return problems


def plot(doc, directory):
    """memory.png and speed.png; a sentence saying why not, or None."""
    for stale in ("memory.png", "speed.png"):
        if (directory / stale).exists():
            (directory / stale).unlink()
    try:
        import matplotlib
    except ImportError:
        return ("no plots: matplotlib is missing from %s; install the dev "
                "requirements: python3 -m pip install -r requirements/dev.txt"
                % sys.executable)
    matplotlib.use("Agg")
    from matplotlib import pyplot

    columns = doc["columns"]
    written = []
    if doc.get("memory"):
        rows = doc["memory"]["scenarios"]
        values = [[row["cells"][c["key"]].get("extra_ratio")
                   for c in columns] for row in rows]
        limits = [row["target_max"] for row in rows]
        path = directory / "memory.png"
        grouped_bars(pyplot, [SHORT_TITLES.get(r["name"], r["name"])
                              for r in rows], columns, values, limits, path,
                     "extra peak RSS / payload (payload %s)"
                     % human_size(doc["memory"]["size"]),
                     "pickling large payloads: extra peak memory "
                     "(dashes: target)")
        written.append(path)
    if doc.get("speed"):
        rows = doc["speed"]["benchmarks"]
        values = [[row["cells"][c["key"]].get("ratio") for c in columns]
                  for row in rows]
        path = directory / "speed.png"
        grouped_bars(pyplot, [r["name"] for r in rows], columns, values,
                     [SPEED_TARGET] * len(rows), path,
                     "speed relative to the column's baseline "
                     "(> 1 is faster)",
                     "small objects (dashes: target %.2fx)" % SPEED_TARGET)
        written.append(path)
    doc["files"].update({p.stem + "_png": str(p) for p in written})
    return None


def grouped_bars(pyplot, groups, columns, values, marks, path, ylabel, title):
    figure, axes = pyplot.subplots(figsize=(max(8, 1.6 * len(groups)), 5))
    width = 0.8 / max(len(columns), 1)
    for index, column in enumerate(columns):
        xs = [g + (index - (len(columns) - 1) / 2.0) * width
              for g in range(len(groups))]
        heights = [v[index] if v[index] is not None else 0 for v in values]
        axes.bar(xs, heights, width, label=column["label"])
        for x, value in zip(xs, (v[index] for v in values)):
            if value is None:
                axes.text(x, 0, "n/a", rotation=90, ha="center",
                          va="bottom", fontsize=7)
    for g, mark in enumerate(marks):
        axes.hlines(mark, g - 0.45, g + 0.45, colors="black",
                    linestyles="dashed", linewidth=1)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    pyplot.close(figure)


# -- the verb -----------------------------------------------------------------

def command_line(line, args):
    words = ["python3", "-m", "tools", "bench"]
    if line.name != DEFAULT_LINE:
        words += ["--base", line.name]
    if args.quick:
        words.append("--quick")
    if args.size:
        words += ["--size", args.size]
    if args.only:
        words += ["--only", args.only]
    return " ".join(words)


def run(ws, line, args):
    started = time.time()
    if args.publish:
        # Before the run, so that a missing marker does not waste it.
        readme_section(ws, line)
    load_before = os.getloadavg()[0]
    size = parse_size(args.size) if args.size else (
        QUICK_SIZE if args.quick else DEFAULT_SIZE)
    record = interpreter(ws, line)
    directory = results_dir(ws, line)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    want_memory = args.only in (None, "memory")
    want_speed = args.only in (None, "speed")
    columns, notes = plan_columns(ws, line, record, logs, print, want_speed)
    same = stock_build(ws, line)
    cpus = os.cpu_count() or 1
    if want_speed and load_before > BUSY_LOAD * cpus:
        notes.append("the machine is busy (load average %.1f on %d CPUs "
                     "before the bench): the speed ratios are unreliable; "
                     "rerun on an idle machine" % (load_before, cpus))
    for note in notes:
        print("note: " + note)
    probe_columns(columns, logs)
    label_columns(columns)
    print("comparing: " + "; ".join(
        "%s = %s" % (c.label, c.python or "-") for c in columns), flush=True)
    memory = run_memory(directory, columns, size, logs, print) if want_memory \
        else None
    speed = run_speed(directory, columns, args.quick, logs, print) if want_speed \
        else None
    doc = {
        "schema": SCHEMA,
        "command": command_line(line, args),
        "line": line.name,
        "started": datetime.datetime.fromtimestamp(started).isoformat(
            timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": cpus,
                 "kernel": platform.release(),
                 "python": sys.version.split()[0],
                 "load_average_before": load_before,
                 "load_average_after": os.getloadavg()[0]},
        "patched": {k: record.get(k) for k in (
            "python", "mode", "c_accelerator", "base", "head")},
        "stock_build": {k: same.get(k) for k in (
            "python", "base", "head", "toolchain_fixes")} if same else None,
        "size": size,
        "quick": bool(args.quick),
        "columns": [asdict(c) for c in columns],
        "memory": memory,
        "speed": speed,
        "notes": notes,
        "files": {"json": str(directory / "results.json")},
    }
    failures = [(row["name"], key, cell) for section, rows_key in (
        (memory, "scenarios"), (speed, "benchmarks")) if section
        for row in section[rows_key] for key, cell in row["cells"].items()
        if cell["status"] == "failed"]
    doc["failures"] = ["%s on %s: %s" % (name, key, cell["reason"])
                       for name, key, cell in failures]
    problem = plot(doc, directory)
    doc["wall_seconds"] = round(time.time() - started, 1)
    (directory / "results.json").write_text(
        json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print()
    print(format_table(doc))
    print()
    for name in sorted(doc["files"]):
        print("%s: %s" % (name.replace("_", " "), doc["files"][name]))
    if problem:
        print(problem)
    for note in notes:
        print("note: " + note)
    print("wall time: %dm%02ds" % divmod(int(doc["wall_seconds"]), 60))
    if failures:
        raise Failure("%d measurement(s) failed, the first: %s"
                      % (len(failures), doc["failures"][0]))
    if args.publish:
        publish(ws, line, doc, directory)
    return 0


# -- publishing ---------------------------------------------------------------

def readme_section(ws, line):
    """README.md's text and the span between the bench markers of line."""
    readme = ws.root / "README.md"
    begin = "<!-- bench %s -->" % line.name
    end = "<!-- end bench %s -->" % line.name
    text = readme.read_text() if readme.exists() else ""
    first = text.find(begin)
    last = text.find(end, first + 1)
    if first < 0 or last < 0:
        raise UsageError("--publish: README.md has no lines %r and %r "
                         "between which to put the table" % (begin, end))
    return readme, text, first + len(begin), last


def publish(ws, line, doc, directory):
    """Copy a run's results to docs/bench/<line>/ and its table into the
    README, so that the repository shows the latest measurement."""
    readme, text, start, stop = readme_section(ws, line)
    target = ws.root / "docs" / "bench" / line.name
    target.mkdir(parents=True, exist_ok=True)
    kept = dict(doc, files={})
    for name in ("memory.png", "speed.png"):
        if (target / name).exists():
            (target / name).unlink()
        if (directory / name).exists():
            shutil.copyfile(str(directory / name), str(target / name))
            kept["files"][name[:-4] + "_png"] = name
    kept["files"]["json"] = "results.json"
    (target / "results.json").write_text(
        json.dumps(kept, indent=2, sort_keys=True) + "\n")
    relative = target.relative_to(ws.root).as_posix()
    lines = ["", "`%s`, %s, %d CPUs:" % (doc["command"], doc["started"],
                                         doc["host"]["cpus"]),
             "", "```text", format_table(doc), "```", ""]
    lines += ["![%s](%s/%s)" % (title, relative, name)
              for name, title in (("memory.png", "extra peak memory"),
                                  ("speed.png", "small-object speed"))
              if name[:-4] + "_png" in kept["files"]]
    readme.write_text(text[:start] + "\n".join(lines) + "\n" + text[stop:])
    print("published: %s/ and README.md" % relative)
