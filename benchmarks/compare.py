"""Run the scenarios of pickle_scenarios.py in every interpreter compared.

The columns: the patched build's C and Python picklers, the same base
built without the series (`tools build --stock`) and, for 3.7, its pickle5
backport, pyenv's stock 3.7 and the newest upstream CPython; those other
than the patched one run in venvs under build/bench/venvs/ made from
requirements/bench-*.txt.  measure() runs the large-payload scenarios
(peak memory and throughput) and the small-object workloads (instructions
under callgrind, or pyperf's wall clock), each in a fresh process, and
gives the results document that report.py turns into a table.
"""

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.model import providers
from tools.model.make import PIP_TARGET, install_paths
from tools.model.workspace import base_option

RUNNER = Path(__file__).resolve().parent / "pickle_scenarios.py"
# The runner imports workloads.py as a top-level module, as it must when
# run by path; it is imported the same way here, unchanged: even an extra
# import branch in it moved the instruction counts by 0.3%.
sys.path.insert(0, str(RUNNER.parent))
import pickle_scenarios as scenarios  # noqa: E402

del sys.path[0]

MIB = 1 << 20
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


def measure(ws, line, patched, directory, size, only, wall, quick, out):
    """The results document of a run (but its command, start and wall
    time), and pyperf's compare_to table of its wall clock section or
    None.  ONLY is None, "memory" or "speed"; WALL asks for pyperf even
    where valgrind exists; QUICK for fewer calls."""
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    columns, notes = plan_columns(ws, line, patched, logs, out)
    timed = wall or not shutil.which("valgrind")
    if timed and only != "memory":
        if not wall:
            notes.append("no valgrind: small objects timed with pyperf "
                         "(apt-get install valgrind counts instructions)")
        ensure_patched_extras(ws, line, patched, logs, out, notes)
    for note in notes:
        out("note: " + note)
    probe_columns(columns, logs)
    out("comparing: " + "; ".join(
        "%s = %s" % (c.label, c.python or "-") for c in columns))
    memory = speed = None
    if only != "speed":
        memory = run_memory(directory, columns, size, logs, out)
    if only != "memory":
        speed = run_wall(directory, columns, quick, logs, out) if timed \
            else run_counts(columns, QUICK_CALLS if quick else CALLS,
                            logs, out)
    doc = {"line": line.name, "cpus": os.cpu_count(),
           "columns": [asdict(c) for c in columns],
           "memory": memory, "speed": speed, "notes": notes}
    if speed is not None and speed["method"] == "wall":
        return doc, compare_table(speed, columns)
    return doc, None
