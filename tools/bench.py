"""Measure memory and speed of pickling, patched against stock CPython.

  bench                  the large-payload scenarios at --size 512M, then
                         the small-object workloads: instructions per call
                         under callgrind where valgrind exists, else pyperf
  bench --quick          a 64 MiB payload and fewer calls
  bench --only memory    only the large-payload scenarios (or: speed)
  bench --wall           pyperf wall clock even where valgrind exists
  bench --size 2G        another payload size; sizes over 512 MiB wait for
                         /tmp/bigmem.lock, which heavy runs share
  bench --publish        also put the table into README.md, between
                         <!-- bench <line> --> and <!-- end bench <line> -->

Each measurement runs benchmarks/pickle_scenarios.py in a fresh process of
each interpreter compared (README.md, "Measuring", lists them); those
other than the patched one run in venvs under build/bench/venvs/ made
from requirements/bench-*.txt.  The issue's targets are printed beside the
numbers and marked "!" where a patched column misses them; nothing is
asserted.  A scenario an interpreter cannot run is "n/a (reason)".
Results, per line, in build/bench/<line>/: table.txt, results.json,
memory.png and speed.png (with matplotlib), speed/ (pyperf) and logs/.
"""

import contextlib
import datetime
import fcntl
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .model import providers
from .model.errors import Failure, UsageError
from .model.make import PIP_TARGET, install_paths
from .model.workspace import base_option, interpreter, parse_size

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RUNNER = BENCHMARKS / "pickle_scenarios.py"
sys.path.insert(0, str(BENCHMARKS))
import pickle_scenarios as scenarios  # noqa: E402

del sys.path[0]

MIB = 1 << 20
DEFAULT_SIZE = 512 * MIB
QUICK_SIZE = 64 * MIB
MIN_SIZE = 2 * MIB
# Runs whose payload is larger than this take the machine's big-memory lock:
# a scenario can hold four payloads at once.
HEAVY_SIZE = 512 * MIB
BIGMEM_LOCK = "/tmp/bigmem.lock"
REQUIREMENTS = {"3.7": "bench-py37.txt", "upstream": "bench-upstream.txt"}
# pip 22 is the first to know the wheel tags numpy needs; 24.1 the first
# that no longer runs on 3.7.
PIP = "pip>=22,<24.1"
# Installed with the host pip into a patched interpreter for --wall.
PATCHED_EXTRAS = ("pyperf", "psutil")
# Calls counted per workload and implementation, after WARM_CALLS that
# both runs make: the first calls pay one-time costs (caches, memo and
# free-list growth, 3.13's specialization), which at 20 calls from a cold
# start moved a C row by up to 2%.  The Python pickler's calls are 30
# times longer, so fewer of them amortize the same noise.
CALLS = {"c": 200, "py": 20}
QUICK_CALLS = {"c": 50, "py": 5}
WARM_CALLS = 5
# pyperf options of --wall, full and --quick.
WALL_FULL = ["--processes", "10"]
WALL_QUICK = ["--processes", "2", "--values", "3", "--warmups", "1",
              "--min-time", "0.05"]
# The targets for the small-object ratios: patched C no more than
# its baselines, patched Py within 2% of the stock Python pickler.
COUNT_TARGET = {"c": 1.00, "py": 1.02}
# The column labels by role, of {0} the version and {1} C or Py.
LABELS = {"patched": "patched {0} {1}",
          "same-build": "stock {0} {1} (same build)",
          "backport": "{0}+pickle5"}
SHORT_TITLES = {name: title.replace(" to a file", " -> file")
                .replace(" from a file", " <- file")
                for name, title, _ in scenarios.SCENARIOS}


def add_arguments(parser):
    parser.add_argument("--size", metavar="SIZE",
                        help="payload size, e.g. 512M or 2G (default 512M; "
                             "64M with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller payload, fewer calls")
    parser.add_argument("--only", choices=("memory", "speed"),
                        help="run only the memory scenarios or only the "
                             "small-object workloads")
    parser.add_argument("--wall", action="store_true",
                        help="time the small objects with pyperf even "
                             "where valgrind exists")
    parser.add_argument("--publish", action="store_true",
                        help="also put the table into README.md")


def payload_size(text):
    size = parse_size(text, "--size", "512M or 2G")[1]
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
    role: str           # patched, same-build, backport, stock or upstream
    baselines: tuple = ()   # the columns its ratios are taken against
    version: str = ""
    protocol: int = 0
    status: str = "ok"  # or n/a when the column cannot run at all
    short: str = ""
    reason: str = ""
    pyperf: str = ""


def column_na(column):
    return {"status": column.status, "short": column.short,
            "reason": column.reason}


def child_env():
    """No PYTHON* settings of ours may change how the measured processes
    import; the hash seed is fixed so that instruction counts repeat."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["PYTHONHASHSEED"] = "0"
    return env


def newest_pyenv_python():
    """pyenv's newest CPython 3 release above 3.7, or None."""
    if not shutil.which("pyenv"):
        return None
    root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout
    found = []
    for path in Path(root.strip(), "versions").glob("3.*.*"):
        match = re.fullmatch(r"3\.(\d+)\.(\d+)", path.name)
        python = path / "bin" / ("python3.%s" % (match and match.group(1)))
        if match and int(match.group(1)) > 7 and os.access(python, os.X_OK):
            found.append(((int(match.group(1)), int(match.group(2))), python))
    return str(max(found)[1]) if found else None


def requirements_file(ws, name):
    """The bench requirements of a line, or of "upstream"."""
    return ws.root / "requirements" / REQUIREMENTS.get(
        name, REQUIREMENTS["upstream"])


def run_logged(command, log, **kw):
    """Run COMMAND with its output appended to LOG; the CompletedProcess."""
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(map(shlex.quote, map(str, command))))
        f.flush()
        return subprocess.run([str(c) for c in command], stderr=f,
                              stdout=kw.pop("stdout", f), env=child_env(),
                              **kw)


def ensure_venv(ws, name, base, which, logs, out, notes):
    """The python of the venv NAME (default cpython-<version>) of BASE with
    the requirements of WHICH, made once and reused; None without BASE.
    When the venv cannot be made: BASE, and a note saying why."""
    if base is None:
        return None
    proc = subprocess.run([base, "-c", "import platform; "
                           "print(platform.python_version())"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, env=child_env())
    version = proc.stdout.strip() if proc.returncode == 0 else "?"
    venv = ws.root / "build" / "bench" / "venvs" / (
        name or "cpython-" + version)
    python = venv / "bin" / "python"
    stamp = venv / "zerocopy-bench-requirements.txt"
    requirements = requirements_file(ws, which)
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    log = logs / ("venv-%s.log" % venv.name)
    out("preparing %s (pip install -r %s; log: %s)"
        % (venv, requirements.relative_to(ws.root), log))
    pip = [python, "-m", "pip", "install", "--quiet", "--no-input",
           "--disable-pip-version-check"]
    steps = [[base, "-m", "venv", venv]] if not python.exists() else []
    if version.startswith("3.7."):
        steps.append(pip + ["--upgrade", PIP])
    steps.append(pip + ["-r", requirements])
    for step in steps:
        if run_logged(step, log).returncode != 0:
            notes.append("could not prepare the venv %s (see %s): measuring "
                         "the bare %s" % (venv, log, base))
            return str(base)
    stamp.write_text(wanted)
    return str(python)


def ensure_patched_extras(ws, line, python, logs, out, notes):
    """pyperf and psutil in the patched interpreter, for --wall, installed
    the way `tools build` installs numpy: the host pip, --target and the
    line's platform tags."""
    pins = []
    for text in requirements_file(ws, line.name).read_text().splitlines():
        text = text.split("#", 1)[0].strip()
        if re.split(r"[=<>!~;\s]", text, 1)[0].lower() in PATCHED_EXTRAS:
            pins.append(text)
    proc = subprocess.run([python, "-c", "import pyperf, psutil"],
                          stderr=subprocess.DEVNULL, env=child_env())
    if proc.returncode == 0:
        return
    log = logs / "patched-pyperf.log"
    out("installing %s into %s (log: %s)" % (", ".join(pins), python, log))
    command = [sys.executable, "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check", "--no-input", "--upgrade",
               "--only-binary=:all:", "--no-deps", "--ignore-requires-python",
               "--target", install_paths(python)[1]]
    if run_logged(command + PIP_TARGET[line.name] + pins, log).returncode:
        notes.append("could not install pyperf into %s (see %s)"
                     % (python, log))


def stock_build(ws, line):
    """The record of `tools build --stock`, when its interpreter exists."""
    record = ws.read_interpreter(line, variant="stock")
    return record if record and Path(record["python"]).exists() else None


def plan_columns(ws, line, patched, logs, out):
    """The columns of the table, before probing them, and notes."""
    notes = []
    same = stock_build(ws, line)
    build = ensure_venv(ws, "stock-build-" + line.name, same["python"],
                        line.name, logs, out, notes) if same else None
    if not same:
        notes.append("no same-build stock interpreter: the patched columns "
                     "have no baseline; `python3 -m tools build --stock%s` "
                     "makes one" % base_option(line))
    c_bases = ("build-c", "pickle5-c") if line.name == "3.7" else ("build-c",)
    columns = [
        Column("patched-c", "", patched, "pickle", "c", "patched", c_bases),
        Column("patched-py", "", patched, "pickle", "py", "patched",
               ("build-py",)),
        Column("build-c", "", build, "pickle", "c", "same-build"),
        Column("build-py", "", build, "pickle", "py", "same-build")]
    if line.name != "3.7":
        return columns, notes
    found = providers.find_installed(line)
    stock = ensure_venv(ws, None, found[0] if found else None, line.name,
                        logs, out, notes)
    upstream = ensure_venv(ws, None, newest_pyenv_python(), "upstream",
                           logs, out, notes)
    columns += [Column("pickle5-c", "", build, "pickle5", "c", "backport"),
                Column("stock-c", "", stock, "pickle", "c", "stock"),
                Column("upstream-c", "", upstream, "pickle", "c", "upstream")]
    return columns, notes


def run_runner(python, args, log, timeout, prefix=()):
    """Run the scenario runner; its last stdout line is a JSON object."""
    try:
        proc = run_logged([*prefix, python, RUNNER, *args], log,
                          stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "short": "timeout",
                "reason": "no answer within %d s (see %s)" % (timeout, log)}
    with open(log, "a") as f:
        f.write(proc.stdout)
    lines = [text for text in proc.stdout.splitlines()
             if text.startswith("{")]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = None
    if isinstance(result, dict) and result.get("status") in (
            "ok", "n/a", "failed"):
        if result["status"] == "failed":
            result.setdefault("short", "error")
            result["reason"] = "%s (see %s)" % (result.get("reason"), log)
        return result
    short = ("signal %d" % -proc.returncode if proc.returncode < 0
             else "exit %d" % proc.returncode)
    return {"status": "failed", "short": short,
            "reason": "the runner ended with %s and no result (see %s)"
                      % (short, log)}


def probe_columns(columns, logs):
    """Ask each interpreter what it offers, and name the columns after the
    versions found."""
    for column in columns:
        info = {"status": "n/a", "short": "not installed",
                "reason": "no %s interpreter found" % column.role}
        if column.python is not None:
            log = logs / ("probe-%s.log" % column.key)
            log.write_text("")
            info = run_runner(column.python, ["probe", "--module",
                                              column.module, "--impl",
                                              column.impl], log, 120)
            column.version = info.get("python") or column.role
            column.pyperf = info.get("pyperf") or ""
            column.protocol = info.get("protocol") or 0
            column.label = LABELS.get(column.role, "{0} {1}").format(
                column.version, column.impl.capitalize())
        if info["status"] == "ok" and info.get("memory_method"):
            info = {"status": "n/a", "short": "no VmHWM",
                    "reason": info["memory_method"]}
        column.status = info["status"]
        column.short = info.get("short", "")
        column.reason = info.get("reason", "")


# -- memory -------------------------------------------------------------------

@contextlib.contextmanager
def heavy_lock(size, out):
    """Hold /tmp/bigmem.lock around runs with a payload over 512 MiB, unless
    this process has it open already (run under `flock /tmp/bigmem.lock`)."""
    lock = os.path.realpath(BIGMEM_LOCK)
    held = any(os.path.realpath("/proc/self/fd/" + fd) == lock
               for fd in os.listdir("/proc/self/fd"))
    if size <= HEAVY_SIZE or held:
        yield
        return
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


def memory_cell(column, name, size, workdir, logs):
    if column.status != "ok":
        return column_na(column)
    log = logs / ("memory-%s-%s-%d.log" % (column.key, name, size))
    log.write_text("")
    # About 2 MB/s would be very slow even for the Python pickler.
    timeout = 120 + size * scenarios.REPEATS // 2000000
    common = ["--module", column.module, "--impl", column.impl,
              "--size", size, "--dir", workdir]
    try:
        if name.startswith("load-"):
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
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=str(directory)))
    try:
        with heavy_lock(size, out):
            for name, title, limit in scenarios.SCENARIOS:
                out("memory: %s, %s (%d interpreters)"
                    % (title, human_size(size), len(columns)))
                cells = {c.key: memory_cell(c, name, size, workdir, logs)
                         for c in columns}
                if name in scenarios.OUT_OF_BAND:
                    for column in columns:
                        time_ratio(cells[column.key], column, name, workdir,
                                   logs)
                rows.append({"name": name, "title": title, "limit": limit,
                             "target_max": limit + scenarios.SLACK,
                             "cells": cells})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"size": size, "repeats": scenarios.REPEATS, "scenarios": rows}


def time_ratio(cell, column, name, workdir, logs):
    """An out-of-band round trip's time over its time at 1 MiB: about 1
    when it does not depend on the payload size."""
    small = scenarios.OOB_REFERENCE_SIZE
    if cell["status"] == "ok" and cell["payload_bytes"] > small:
        reference = memory_cell(column, name, small, workdir, logs)
        if reference["status"] == "ok" and reference["best_seconds"] > 0:
            cell["time_ratio"] = (cell["best_seconds"] /
                                  reference["best_seconds"])


# -- small objects: instructions ----------------------------------------------

def callgrind_total(column, args, log, outfile):
    """The instructions callgrind counted for one runner process."""
    prefix = ["nice", "valgrind", "--tool=callgrind", "-q",
              "--callgrind-out-file=%s" % outfile]
    result = run_runner(column.python, ["count"] + args + [
        "--module", column.module, "--impl", column.impl], log, 1800, prefix)
    if result["status"] != "ok":
        return result
    with open(outfile) as f:
        totals = [int(text.split()[1]) for text in f
                  if text.startswith(("totals:", "summary:"))]
    os.unlink(outfile)
    if not totals:
        return {"status": "failed", "short": "no totals",
                "reason": "callgrind wrote no totals (see %s)" % log}
    return {"status": "ok", "total": totals[0]}


def count_cells(column, workload, calls, logs):
    """{op: cell} of instructions per call of each operation: the count of
    WARM_CALLS + calls calls minus that of WARM_CALLS calls, over calls."""
    if column.status != "ok":
        return {op: column_na(column) for op in scenarios.OPERATIONS}
    calls = calls[column.impl]
    log = logs / ("count-%s-%s.log" % (column.key, workload))
    log.write_text("")
    out = str(logs / ("callgrind-%s.out" % column.key))
    cells = {}
    for op in scenarios.OPERATIONS:
        base = callgrind_total(column, [workload, op, WARM_CALLS], log, out)
        run = callgrind_total(column, [workload, op, WARM_CALLS + calls],
                              log, out) if base["status"] == "ok" else base
        cells[op] = run if run["status"] != "ok" else {
            "status": "ok", "calls": calls,
            "per_call": (run["total"] - base["total"]) / float(calls)}
    return cells


def run_counts(columns, calls, logs, out):
    rows = []
    for workload in scenarios.WORKLOADS:
        out("instructions: %s workload (%d interpreters, valgrind)"
            % (workload, len(columns)))
        per_column = {c.key: count_cells(c, workload, calls, logs)
                      for c in columns}
        for op in scenarios.OPERATIONS:
            rows.append({"name": "%s %s" % (op, workload), "cells": {
                key: cells[op] for key, cells in per_column.items()}})
    add_ratios(rows, columns, "per_call")
    return {"method": "instructions", "calls": calls, "rows": rows}


def add_ratios(rows, columns, field):
    """Each patched cell's FIELD over the smallest of its baselines'."""
    for row in rows:
        for column in columns:
            cell = row["cells"][column.key]
            bases = [row["cells"][key][field] for key in column.baselines
                     if row["cells"].get(key, {}).get("status") == "ok"]
            if cell["status"] == "ok" and bases:
                cell["ratio"] = cell[field] / min(bases)
                cell["target"] = COUNT_TARGET[column.impl]


# -- small objects: pyperf wall clock -----------------------------------------

def run_wall(directory, columns, quick, logs, out):
    """The small-object workloads under pyperf, one JSON file a column,
    summarised with pyperf's own statistics."""
    import pyperf

    speed_dir = directory / "speed"
    shutil.rmtree(str(speed_dir), ignore_errors=True)
    speed_dir.mkdir(parents=True)
    files, states = {}, {}
    for column in columns:
        path = speed_dir / ("%s.json" % column.key)
        log = logs / ("speed-%s.log" % column.key)
        if column.status != "ok":
            states[column.key] = column_na(column)
            continue
        if not column.pyperf:
            states[column.key] = {"status": "n/a", "short": "no pyperf",
                                  "reason": "pyperf is not installed in %s"
                                            % column.python}
            continue
        out("pyperf: %s" % column.label)
        command = [column.python, RUNNER, "speed", "--module", column.module,
                   "--impl", column.impl, "--output", path, "--quiet"]
        if run_logged(command + (WALL_QUICK if quick else WALL_FULL),
                      log).returncode == 0:
            files[column.key] = path
        else:
            states[column.key] = {"status": "failed", "short": "pyperf",
                                  "reason": "pyperf failed (see %s)" % log}
    suites = {key: pyperf.BenchmarkSuite.load(str(path))
              for key, path in files.items()}
    return wall_section(columns, suites, states, files)


def wall_section(columns, suites, states, files):
    rows = []
    for name in scenarios.SPEED_BENCHMARKS:
        cells = {}
        for column in columns:
            cell = states.get(column.key)
            if cell is None:
                bench = suites[column.key].get_benchmark(name)
                # Lower is better for a time, as for instructions.
                cell = {"status": "ok", "median": bench.median(),
                        "stdev": bench.stdev(), "values": bench.get_nvalue(),
                        "time": bench.median()}
            cells[column.key] = cell
        rows.append({"name": name.replace("_", " "), "cells": cells})
    add_ratios(rows, columns, "time")
    return {"method": "wall", "rows": rows,
            "files": {k: str(v) for k, v in files.items()}}


def compare_table(speed, columns):
    """pyperf's own compare_to table of the patched C column's baseline
    against the other columns, or None."""
    files = speed.get("files", {})
    keys = [c.key for c in columns if c.key in files]
    first = next((k for k in ("build-c", "stock-c") if k in files), None)
    if first is None or len(keys) < 2:
        return None
    paths = [files[first]] + [files[k] for k in keys if k != first]
    proc = subprocess.run([sys.executable, "-m", "pyperf", "compare_to",
                           "--table"] + paths, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return proc.stdout.rstrip()


# -- the table ----------------------------------------------------------------

def failure_text(cell):
    if cell.get("status") == "n/a":
        return "n/a (%s)" % (cell.get("short") or "unsupported")
    return "FAILED (%s)" % (cell.get("short") or "error")


def format_seconds(seconds):
    if seconds >= 1:
        return "%.2f s" % seconds
    if seconds >= 1e-3:
        return "%.1f ms" % (seconds * 1e3)
    return "%.0f us" % (seconds * 1e6)


def cell_text(kind, row, cell, patched):
    """A cell of a section (memory, throughput, instructions or wall);
    " !" marks a patched cell that misses its target."""
    if cell["status"] != "ok":
        return failure_text(cell)
    if kind == "memory":
        miss = patched and cell["extra_ratio"] > row["target_max"]
        return "%+.2fx" % cell["extra_ratio"] + (" !" if miss else "")
    if kind == "throughput" and row["name"] in scenarios.OUT_OF_BAND:
        text = format_seconds(cell["best_seconds"])
        if cell.get("time_ratio") is not None:
            text += " (x%.1f)" % cell["time_ratio"]
        return text
    if kind == "throughput":
        return "%.0f" % cell["mb_per_s"]
    if kind == "instructions":
        text = "%.1fk" % (cell["per_call"] / 1e3)
    else:
        text = format_seconds(cell["time"])
    if cell.get("ratio") is not None:
        text += " %.3fx" % cell["ratio"]
        if cell["ratio"] > cell["target"]:
            text += " !"
    return text


def target_text(kind, row):
    if kind == "memory" and row["name"] in scenarios.OUT_OF_BAND:
        return "< %.2fx" % scenarios.SLACK
    if kind == "memory":
        return "<= %.2fx (limit %gx)" % (row["target_max"], row["limit"])
    return "" if kind == "throughput" else "C <= 1.00x, Py <= 1.02x"


def small_title(speed):
    if speed["method"] != "instructions":
        return ("small objects: pyperf wall clock, median time per call, "
                "and the patched columns' ratio to their baseline (--wall, "
                "or no valgrind)")
    calls = speed["calls"]
    if isinstance(calls, dict):   # int in results before per-impl counts
        calls = "%d for C, %d for Py" % (calls["c"], calls["py"])
    return ("small objects: instructions per call (callgrind, "
            "PYTHONHASHSEED=0, (count of %d + N calls - count of %d) "
            "/ N, N = %s), and the patched columns' ratio to their "
            "baseline" % (WARM_CALLS, WARM_CALLS, calls))


def all_rows(doc):
    """The memory scenarios and the small-object rows of a document."""
    return ((doc.get("memory") or {}).get("scenarios", []) +
            (doc.get("speed") or {}).get("rows", []))


def format_table(doc):
    """The text table of a results document."""
    columns = doc["columns"]
    memory, speed = doc.get("memory"), doc.get("speed")
    sections = []
    if memory:
        sections.append(("memory", memory["scenarios"], "extra peak RSS "
                         "over the payload, in payload sizes (payload %s)"
                         % human_size(memory["size"])))
        sections.append(("throughput", memory["scenarios"], "throughput in "
                         "MB/s (10^6 bytes), warm best of %d runs; "
                         "out-of-band: best time, and its ratio to the time "
                         "at %s" % (memory["repeats"], human_size(
                             scenarios.OOB_REFERENCE_SIZE))))
    if speed:
        sections.append((speed["method"], speed["rows"], small_title(speed)))
    rows = []
    for kind, section, title in sections:
        rows.append(title)
        for row in section:
            cells = [cell_text(kind, row, row["cells"][c["key"]],
                               c["role"] == "patched") for c in columns]
            rows.append([SHORT_TITLES.get(row["name"], row["name"]), *cells,
                         target_text(kind, row)])
    rows.append(["protocol"] + [str(c["protocol"] or "-") for c in columns] +
                [""])
    header = ["scenario"] + [c["label"] for c in columns] + ["target"]
    widths = [max(len(r[i]) for r in [header] + rows if isinstance(r, list))
              for i in range(len(header))]
    lines = []
    for cells in [header, ["-" * w for w in widths]] + rows:
        if isinstance(cells, str):
            lines.append(cells + ":")
            continue
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])]
        lines.append("  ".join([cells[0].ljust(widths[0])] + middle +
                               [cells[-1]]).rstrip())
    return "\n".join(lines + footnotes(doc))


def footnotes(doc):
    """The legend, the baselines, then each reason for n/a or FAILED."""
    labels = {c["key"]: c["label"] for c in doc["columns"]}
    lines = ['"!": a patched column misses the target of the issue.']
    for column in doc["columns"]:
        bases = ", ".join(labels[k] for k in column["baselines"])
        if len(column["baselines"]) > 1:
            bases = "min(%s)" % bases
        if column["baselines"]:
            lines.append("%s: ratio to %s" % (column["label"], bases))
    reasons = {}
    for row in all_rows(doc):
        for key, cell in row["cells"].items():
            if cell.get("status") in ("n/a", "failed"):
                where = reasons.setdefault(
                    (failure_text(cell), cell.get("reason", "")), [])
                if labels[key] not in where:
                    where.append(labels[key])
    for (text, reason), where in reasons.items():
        lines.append("%s in %s: %s" % (text, ", ".join(where), reason))
    return lines


# -- plots --------------------------------------------------------------------

def plot(doc, directory):
    """memory.png and speed.png; a sentence saying why not, or None."""
    for stale in ("memory.png", "speed.png"):
        (directory / stale).unlink(missing_ok=True)
    try:
        import matplotlib
    except ImportError:
        return ("no plots: matplotlib is missing from %s; install the dev "
                "requirements: python3 -m pip install -r requirements/dev.txt"
                % sys.executable)
    matplotlib.use("Agg")
    from matplotlib import pyplot

    memory, speed = doc.get("memory"), doc.get("speed")
    if memory:
        grouped_bars(pyplot, doc["columns"], memory["scenarios"],
                     "extra_ratio", directory / "memory.png",
                     "extra peak RSS / payload (payload %s)"
                     % human_size(memory["size"]), marks="target_max")
    if speed:
        counted = speed["method"] == "instructions"
        grouped_bars(pyplot, doc["columns"], speed["rows"],
                     "per_call" if counted else "time",
                     directory / "speed.png",
                     "small objects: %s per call, log scale"
                     % ("instructions" if counted else "seconds"))


def grouped_bars(pyplot, columns, rows, field, path, title, marks=None):
    """Bars of FIELD, a group a row; dashes at each row's MARKS field."""
    groups = [SHORT_TITLES.get(r["name"], r["name"]) for r in rows]
    figure, axes = pyplot.subplots(figsize=(max(8, 1.3 * len(groups)), 5))
    width = 0.8 / max(len(columns), 1)
    for index, column in enumerate(columns):
        xs = [g + (index - (len(columns) - 1) / 2.0) * width
              for g in range(len(groups))]
        heights = [row["cells"][column["key"]].get(field) or 0
                   for row in rows]
        axes.bar(xs, heights, width, label=column["label"])
    if marks:
        for g, row in enumerate(rows):
            axes.hlines(row[marks], g - 0.45, g + 0.45, colors="black",
                        linestyles="dashed", linewidth=1)
        title += " (dashes: target)"
    else:
        # C and Python picklers differ by 50x: only a log scale shows both.
        axes.set_yscale("log")
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=25, ha="right", fontsize=8)
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    pyplot.close(figure)


# -- the verb -----------------------------------------------------------------

def command_line(line, args):
    words = ["python3", "-m", "tools", "bench"] + base_option(line).split()
    words += ["--quick"] if args.quick else []
    words += ["--size", args.size] if args.size else []
    words += ["--only", args.only] if args.only else []
    words += ["--wall"] if args.wall else []
    return " ".join(words)


def run(ws, line, args):
    started = time.time()
    if args.publish:
        # Before the run, so that a missing marker does not waste it.
        readme_section(ws, line)
    size = payload_size(args.size) if args.size else (
        QUICK_SIZE if args.quick else DEFAULT_SIZE)
    patched = interpreter(ws, line)["python"]
    # One per line, so that benching 3.13 keeps the 3.7 results.
    directory = ws.root / "build" / "bench" / line.name
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = functools.partial(print, flush=True)
    columns, notes = plan_columns(ws, line, patched, logs, out)
    wall = args.wall or not shutil.which("valgrind")
    if wall and args.only != "memory":
        if not args.wall:
            notes.append("no valgrind: small objects timed with pyperf "
                         "(apt-get install valgrind counts instructions)")
        ensure_patched_extras(ws, line, patched, logs, out, notes)
    for note in notes:
        out("note: " + note)
    probe_columns(columns, logs)
    out("comparing: " + "; ".join(
        "%s = %s" % (c.label, c.python or "-") for c in columns))
    memory = speed = None
    if args.only != "speed":
        memory = run_memory(directory, columns, size, logs, out)
    if args.only != "memory":
        speed = run_wall(directory, columns, args.quick, logs, out) if wall \
            else run_counts(columns, QUICK_CALLS if args.quick else CALLS,
                            logs, out)
    doc = {"command": command_line(line, args), "line": line.name,
           "started": datetime.datetime.fromtimestamp(started).isoformat(
               timespec="seconds"),
           "cpus": os.cpu_count(), "columns": [asdict(c) for c in columns],
           "memory": memory, "speed": speed, "notes": notes}
    failures = ["%s on %s: %s" % (row["name"], key, cell["reason"])
                for row in all_rows(doc)
                for key, cell in row["cells"].items()
                if cell["status"] == "failed"]
    problem = plot(doc, directory)
    doc["wall_seconds"] = round(time.time() - started, 1)
    table = format_table(doc)
    compared = compare_table(speed, columns) if speed and \
        speed["method"] == "wall" else None
    (directory / "results.json").write_text(
        json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (directory / "table.txt").write_text(table + "\n")
    out("\n" + table + ("\n\npyperf compare_to:\n" + compared
                        if compared else "") + "\n")
    out("results: %s (table.txt, results.json, *.png)" % directory)
    for note in notes + ([problem] if problem else []):
        out("note: " + note)
    out("wall time: %dm%02ds" % divmod(int(doc["wall_seconds"]), 60))
    if failures:
        raise Failure("%d measurement(s) failed, the first: %s"
                      % (len(failures), failures[0]))
    if args.publish:
        publish(ws, line, doc, table)
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


def publish(ws, line, doc, table):
    """Put the table of a run, with its command, into the README."""
    readme, text, start, stop = readme_section(ws, line)
    lines = ["", "`%s`, %s, %d CPUs, %dm%02ds:" % (
        doc["command"], doc["started"], doc["cpus"],
        *divmod(int(doc["wall_seconds"]), 60)),
        "", "```text", table, "```", ""]
    readme.write_text(text[:start] + "\n".join(lines) + text[stop:])
    print("published: the table in README.md")
