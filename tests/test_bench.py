"""`tools bench`: the scenario program, the memory targets on the built
interpreters, the instruction counts, the table against real pyperf
output, and the command line."""

import fcntl
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO, assert_clean_error, run_tools
from benchmarks import compare, report
from tools import bench
from tools.model.workspace import LINES, Workspace

scenarios = compare.scenarios
FIXTURES = REPO / "tests" / "fixtures"
SMALL = 4 << 20
# The payload of the memory-target test: large next to what the allocator
# and the interpreter hold, small enough for any machine that builds.
TARGET_SIZE = 256 << 20


def runner(*args, python=sys.executable):
    proc = subprocess.run([python, str(compare.RUNNER)] +
                          [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr
    return proc, json.loads(lines[-1])


def column(key, python=sys.executable, impl="c", role="patched", **kw):
    return compare.Column(key, key, python, "pickle", impl, role, **kw)


# -- the scenario program -----------------------------------------------------

@pytest.mark.parametrize("impl", ["c", "py"])
def test_every_scenario_gives_a_sane_cell(tmp_path, impl):
    for name, _, limit in scenarios.SCENARIOS:
        common = ["--impl", impl, "--size", SMALL, "--dir", tmp_path]
        if name.startswith("load-"):
            proc, prepared = runner("prepare", name, *common)
            assert prepared["status"] == "ok", (name, proc.stderr)
        proc, cell = runner("memory", name, *common)
        assert proc.returncode == 0, (name, proc.stderr)
        if cell["status"] == "n/a":
            # Only numpy may be missing from the interpreter of the tests.
            assert "numpy" in name and cell["short"] == "no numpy", cell
            continue
        assert cell["status"] == "ok", cell
        assert cell["repeats"] == scenarios.REPEATS
        assert abs(cell["payload_bytes"] - SMALL) < 100, name
        assert cell["extra_bytes"] == max(cell["peak"] - cell["rss_before"],
                                          0)
        assert cell["best_seconds"] > 0, name
        if name in scenarios.OUT_OF_BAND:
            assert cell["buffers"] == 1 and cell["pickle_bytes"] < 1000
        elif name.startswith("dumps-"):
            # The result of dumps is at least the payload, all written:
            # the high-water mark must have seen it.
            assert cell["extra_bytes"] >= 0.9 * SMALL, name
        assert list(tmp_path.iterdir()) == [], name


def test_non_ascii_limit_is_the_size_of_the_loaded_str():
    text = scenarios.make_text(1 << 20, ascii_only=False)
    payload = len(text.encode("utf-8"))
    assert sys.getsizeof(text) / payload == pytest.approx(
        scenarios.NONASCII_RESULT, abs=0.001)
    assert dict((n, lim) for n, _, lim in scenarios.SCENARIOS)[
        "load-nonascii-str-file"] == scenarios.NONASCII_RESULT


def test_unusable_module_and_crashing_runner(tmp_path):
    proc, cell = runner("memory", "dumps-bytearray", "--module",
                        "no_such_pickle_module", "--size", SMALL, "--dir",
                        tmp_path)
    assert proc.returncode == 0 and cell["status"] == "n/a"
    assert cell["short"] == "no no_such_pickle_module"
    log = tmp_path / "log"
    cell = compare.run_runner(sys.executable, ["memory", "no-such-scenario"],
                              log, timeout=60)
    assert cell["status"] == "failed" and cell["short"] == "exit 2"
    assert str(log) in cell["reason"] and "invalid choice" in log.read_text()


def test_runner_runs_on_stock_37(tmp_path):
    found = compare.providers.find_installed(LINES["3.7"])
    if not found:
        pytest.skip("no installed CPython 3.7: `pyenv install 3.7.16` "
                    "enables this test")
    python = str(found[0])
    proc, info = runner("probe", python=python)
    assert info["status"] == "ok" and info["protocol"] == 4, proc.stderr
    for name in ("load-bytearray-file", "oob-picklebuffer"):
        proc, cell = runner("memory", name, "--size", SMALL, "--dir",
                            tmp_path, python=python)
        assert cell["status"] == "n/a" and cell["short"] == "protocol 4"
    proc, cell = runner("count", "records", "loads", "2", python=python)
    assert cell == {"status": "ok", "protocol": 4}, proc.stderr


# -- memory targets on the built interpreters ---------------------------------

# (scenario, target of the patched build, whether stock misses it).  Stock
# 3.13 already writes large bytes objects straight to the file and loads
# them with one copy, so its proof of failure is the str dump.
MEMORY_TARGETS = {
    "3.7": [("dump-bytearray-file", 0.05, True),
            ("load-bytes-file", 1.05, True)],
    "3.13": [("dump-ascii-str-file", 0.05, True),
             ("load-bytes-file", 1.05, False)],
}


def extra_peak(python, name, tmp_path):
    common = ["--size", TARGET_SIZE, "--dir", tmp_path]
    if name.startswith("load-"):
        proc, cell = runner("prepare", name, *common, python=python)
        assert cell["status"] == "ok", proc.stderr
    proc, cell = runner("memory", name, *common, python=python)
    assert cell["status"] == "ok", proc.stderr
    return cell["extra_ratio"]


@pytest.mark.parametrize("line", ["3.7", "3.13"])
def test_memory_targets_hold_patched_and_fail_stock(tmp_path, line):
    ws = Workspace(REPO)
    command = "python3 -m tools build%s" % (
        "" if line == "3.7" else " --base " + line)
    patched = ws.read_interpreter(LINES[line])
    stock = compare.stock_build(ws, LINES[line])
    if patched is None or stock is None:
        pytest.skip("no patched and same-build stock CPython %s: `%s` and "
                    "`%s --stock` enable this test" % (line, command, command))
    for name, target, stock_misses in MEMORY_TARGETS[line]:
        ratio = extra_peak(patched["python"], name, tmp_path)
        assert ratio <= target, (name, ratio)
        if stock_misses:
            # The same check on stock fails: it can see a copy.
            ratio = extra_peak(stock["python"], name, tmp_path)
            assert ratio > target, (name, ratio)


# -- instruction counts -------------------------------------------------------

@pytest.mark.skipif(not shutil.which("valgrind"),
                    reason="no valgrind: `apt-get install valgrind` enables "
                    "the instruction counts")
def test_counts_are_exact_and_give_ratios(tmp_path):
    columns = [column("patched-c", baselines=("base-c",)),
               column("base-c", role="same-build")]
    calls = {"c": 2, "py": 1}
    first = compare.count_cells(columns[0], "list", calls, tmp_path)
    again = compare.count_cells(columns[0], "list", calls, tmp_path)
    assert first == again
    for op in scenarios.OPERATIONS:
        assert first[op]["status"] == "ok" and first[op]["calls"] == 2
        assert 1e3 < first[op]["per_call"] < 1e6
    rows = [{"name": "loads list", "cells": {
        "patched-c": dict(first["loads"]), "base-c": dict(first["dumps"])}}]
    compare.add_ratios(rows, columns, "per_call")
    cell = rows[0]["cells"]["patched-c"]
    assert cell["ratio"] == first["loads"]["per_call"] / \
        first["dumps"]["per_call"]
    assert cell["target"] == 1.00
    assert "ratio" not in rows[0]["cells"]["base-c"]


# -- the table, against real pyperf output ------------------------------------

def wall_doc():
    """Two columns timed by pyperf for real (tests/fixtures/, written by
    `pickle_scenarios.py speed --impl c|py -o ...` on CPython 3.11): the
    Python pickler as a patched column whose baseline is the C one."""
    import pyperf

    columns = [column("patched-py", impl="py", baselines=("build-c",)),
               column("build-c", role="same-build"),
               column("stock-c", role="stock", status="n/a",
                      short="not installed", reason="no stock interpreter")]
    files = {"patched-py": FIXTURES / "pyperf-py.json",
             "build-c": FIXTURES / "pyperf-c.json"}
    suites = {k: pyperf.BenchmarkSuite.load(str(p)) for k, p in files.items()}
    speed = compare.wall_section(
        columns, suites, {"stock-c": compare.column_na(columns[2])}, files)
    return columns, suites, {"columns": [vars(c) for c in columns],
                             "memory": None, "speed": speed}


def test_wall_clock_section_uses_pyperf_statistics():
    columns, suites, doc = wall_doc()
    rows = doc["speed"]["rows"]
    assert [r["name"] for r in rows] == [n.replace("_", " ") for n in
                                         scenarios.SPEED_BENCHMARKS]
    for row in rows:
        bench_py = suites["patched-py"].get_benchmark(
            row["name"].replace(" ", "_"))
        cell = row["cells"]["patched-py"]
        assert cell["median"] == bench_py.median()
        assert cell["stdev"] == bench_py.stdev()
        assert cell["ratio"] == cell["median"] / \
            row["cells"]["build-c"]["median"] > 2
    table = report.format_table(doc)
    assert "pyperf wall clock" in table and "instructions" not in table
    first = [t for t in table.splitlines() if t.startswith("dumps records")]
    assert first[0].count(" !") == 1                     # Py > 1.02x of C
    assert "n/a (not installed) in stock-c: no stock interpreter" in table
    assert "patched-py: ratio to build-c" in table
    compared = compare.compare_table(doc["speed"], columns)
    assert "pyperf-c" in compared and "slower" in compared


def test_table_marks_memory_and_instruction_misses():
    memory_row = {"name": "dump-bytearray-file", "limit": 0.0,
                  "target_max": 0.05, "cells": {
                      "patched-c": {"status": "ok", "extra_ratio": 0.06,
                                    "mb_per_s": 2000.0},
                      "build-c": {"status": "ok", "extra_ratio": 1.0,
                                  "mb_per_s": 1000.0}}}
    count_row = {"name": "dumps records", "cells": {
        "patched-c": {"status": "ok", "per_call": 99e3},
        "build-c": {"status": "ok", "per_call": 100e3}}}
    columns = [column("patched-c", baselines=("build-c",)),
               column("build-c", role="same-build", protocol=4)]
    compare.add_ratios([count_row], columns, "per_call")
    doc = {"columns": [vars(c) for c in columns],
           "memory": {"size": 512 << 20, "repeats": 3,
                      "scenarios": [memory_row]},
           "speed": {"method": "instructions",
                     "calls": {"c": 200, "py": 20},
                     "rows": [count_row]}}
    lines = report.format_table(doc).splitlines()
    rows = [t for t in lines if t.startswith("dump bytearray -> file")]
    assert rows[0].split()[4:7] == ["+0.06x", "!", "+1.00x"]  # miss marked
    assert rows[1].split()[4:6] == ["2000", "1000"]
    assert "warm best of 3 runs" in "\n".join(lines)
    assert ("(count of 5 + N calls - count of 5) / N, N = 200 for C, 20 "
            "for Py)" in "\n".join(lines))
    counts = [t for t in lines if t.startswith("dumps records")][0]
    assert "99.0k 0.990x" in counts and "!" not in counts
    assert [t for t in lines if t.startswith("protocol")][0].split() == [
        "protocol", "-", "4"]


# -- the command line ---------------------------------------------------------

@pytest.mark.parametrize("text,size", [("512M", 512 << 20), ("2G", 2 << 30),
                                       ("64mib", 64 << 20)])
def test_payload_size(text, size):
    assert bench.payload_size(text) == size


def test_command_line_errors(tmp_path):
    proc = run_tools("bench", "--size", "huge", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "--size 'huge' is not a size")
    proc = run_tools("bench", "--size", "1M", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "below the smallest useful payload")
    proc = run_tools("bench", "--base", "3.13", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "run `python3 -m tools build --base 3.13`")
    assert not (tmp_path / "build" / "bench").exists()
    (tmp_path / "README.md").write_text("no markers here\n")
    proc = run_tools("bench", "--publish", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "README.md has no lines '<!-- bench 3.7 -->'")


def test_heavy_runs_take_the_lock(tmp_path, monkeypatch):
    lock = tmp_path / "bigmem.lock"
    monkeypatch.setattr(compare, "BIGMEM_LOCK", str(lock))
    with compare.heavy_lock(compare.HEAVY_SIZE, print):
        assert not lock.exists()
    with compare.heavy_lock(compare.HEAVY_SIZE + 1, print):
        with open(lock) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock, "w") as held:
        # Under `flock FILE python3 -m tools bench` the lock is held
        # through a descriptor of this process: no waiting for itself.
        fcntl.flock(held, fcntl.LOCK_EX)
        with compare.heavy_lock(4 << 30, print):
            pass


def test_publish_replaces_only_its_table(tmp_path):
    readme = ("intro\n<!-- bench 3.7 -->\nan older table\n"
              "<!-- end bench 3.7 -->\n<!-- bench 3.13 -->\nthe 3.13 table\n"
              "<!-- end bench 3.13 -->\n")
    (tmp_path / "README.md").write_text(readme)
    doc = {"command": "python3 -m tools bench --quick", "cpus": 2,
           "started": "2026-12-01T09:00:00", "wall_seconds": 75.4}
    ws = Workspace(tmp_path)
    bench.publish(ws, LINES["3.7"], doc, "THE TABLE")
    text = (tmp_path / "README.md").read_text()
    assert text == readme.replace("\nan older table\n", (
        "\n`python3 -m tools bench --quick`, 2026-12-01T09:00:00, 2 CPUs, "
        "1m15s:\n\n```text\nTHE TABLE\n```\n"))
    bench.publish(ws, LINES["3.7"], doc, "THE TABLE")
    assert (tmp_path / "README.md").read_text() == text
    assert bench.command_line(LINES["3.13"], SimpleNamespace(
        quick=True, size="256M", only=None, wall=False)) == \
        "python3 -m tools bench --base 3.13 --quick --size 256M"
