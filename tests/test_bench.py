"""`tools bench`: the scenario runner, the table, the results document and
the command line, on tiny payloads (the real numbers come from running
`python3 -m tools bench`; nothing here times anything)."""

import fcntl
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, run_tools
from tools import bench, bench_scenarios
from tools.workspace import LINES, Workspace

RUNNER = str(REPO / "tools" / "bench_scenarios.py")
SMALL = 4 << 20


def runner(*args, python=sys.executable):
    proc = subprocess.run([python, RUNNER] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr
    return proc, json.loads(lines[-1])


# -- the scenario runner ------------------------------------------------------

def test_probe_reports_this_interpreter():
    proc, info = runner("probe", "--module", "pickle", "--impl", "py")
    assert proc.returncode == 0, proc.stderr
    assert info["status"] == "ok"
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["protocol"] == pickle.HIGHEST_PROTOCOL
    assert info["memory_method"] is None


def test_dumps_measurement_sees_the_result(tmp_path):
    proc, cell = runner("memory", "dumps-bytearray", "--impl", "c", "--size",
                        SMALL, "--dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cell["status"] == "ok"
    assert cell["payload_bytes"] == SMALL
    assert cell["protocol"] == pickle.HIGHEST_PROTOCOL
    assert cell["peak"] >= cell["rss_before"] > 0
    assert cell["extra_bytes"] == cell["peak"] - cell["rss_before"]
    assert cell["extra_ratio"] == pytest.approx(cell["extra_bytes"] / SMALL)
    # dumps returns a bytes object at least as large as the payload, all
    # of it written: the high-water mark must have seen it.
    assert cell["extra_bytes"] >= 0.9 * SMALL
    assert SMALL <= cell["pickle_bytes"] < SMALL + 4096
    assert cell["seconds"] > 0 and cell["mb_per_s"] > 0


@pytest.mark.parametrize("scenario", bench_scenarios.SCENARIO_NAMES)
@pytest.mark.parametrize("impl", ["c", "py"])
def test_every_scenario_gives_a_sane_cell(tmp_path, scenario, impl):
    common = ["--impl", impl, "--size", SMALL, "--dir", tmp_path]
    if scenario in bench_scenarios.NEEDS_PREPARE:
        proc, prepared = runner("prepare", scenario, *common)
        assert prepared["status"] == "ok", proc.stderr
        assert os.path.getsize(prepared["path"]) >= SMALL
    proc, cell = runner("memory", scenario, *common)
    assert proc.returncode == 0, proc.stderr
    if cell["status"] == "n/a":
        # Only numpy may be missing from the interpreter running the tests.
        assert scenario == "oob-numpy" and cell["short"] == "no numpy"
        return
    assert cell["status"] == "ok", cell
    assert cell["scenario"] == scenario and cell["impl"] == impl
    assert abs(cell["payload_bytes"] - SMALL) < 100
    assert cell["peak"] >= cell["rss_before"]
    assert cell["extra_bytes"] >= 0 and cell["seconds"] > 0
    if scenario in bench_scenarios.OUT_OF_BAND:
        assert cell["buffers"] == 1
        assert cell["pickle_bytes"] < 1024
        assert 0 < cell["best_seconds"]
    # The pickle files are removed once measured.
    assert list(tmp_path.iterdir()) == []


def test_non_ascii_text_is_counted_in_utf8_bytes():
    text, size = bench_scenarios.make_text(10000, ascii_only=False)
    assert len(text.encode("utf-8")) == size
    assert 10000 - len(bench_scenarios.TEXT_BLOCK.encode("utf-8")) < size \
        <= 10000
    assert max(map(ord, text)) > 0xff


def test_missing_module_is_not_applicable(tmp_path):
    proc, cell = runner("memory", "dumps-bytearray", "--module",
                        "no_such_pickle_module", "--size", SMALL, "--dir",
                        tmp_path)
    assert proc.returncode == 0
    assert cell == {"status": "n/a", "short": "no no_such_pickle_module",
                    "reason": cell["reason"]}
    assert "No module named" in cell["reason"]


def test_a_failing_runner_becomes_a_failed_cell(tmp_path):
    log = tmp_path / "log"
    cell = bench.run_runner(sys.executable, ["memory", "no-such-scenario"],
                            log, timeout=60)
    assert cell["status"] == "failed"
    assert cell["short"] == "exit 2"
    assert str(log) in cell["reason"]
    assert "invalid choice" in log.read_text()


def stock(version):
    found = [python for ver, python in bench.pyenv_versions()
             if ver[:2] == version]
    if not found:
        pytest.skip("no CPython %d.%d installed with pyenv" % version)
    return found[-1]


@pytest.mark.parametrize("version", [(3, 7), (3, 13)])
def test_runner_runs_on_old_and_new_pythons(tmp_path, version):
    python = stock(version)
    proc, info = runner("probe", python=python)
    assert info["status"] == "ok", proc.stderr
    proc, cell = runner("memory", "dump-bytearray-file", "--size", SMALL,
                        "--dir", tmp_path, python=python)
    assert cell["status"] == "ok", proc.stderr
    assert cell["python"].startswith("%d.%d." % version)
    proc, cell = runner("memory", "oob-picklebuffer", "--size", SMALL,
                        "--dir", tmp_path, python=python)
    if version == (3, 7):
        assert info["protocol"] == 4
        assert cell["status"] == "n/a" and cell["short"] == "protocol 4"
    else:
        assert info["protocol"] == 5
        assert cell["status"] == "ok" and cell["buffers"] == 1


# -- the columns --------------------------------------------------------------

@pytest.fixture
def discovery(tmp_path, monkeypatch):
    """plan_columns on a workspace in TMP_PATH, with pyenv's interpreters
    and the venvs made up, and the pyperf installations recorded."""
    installs = []
    monkeypatch.setattr(bench.providers, "find_installed",
                        lambda line: ["/pyenv/3.7.16/bin/python3.7"])
    monkeypatch.setattr(bench, "pyenv_versions", lambda: [
        ((3, 7, 16), "/pyenv/3.7.16/bin/python3.7"),
        ((3, 13, 0), "/pyenv/3.13.0/bin/python3.13")])
    monkeypatch.setattr(bench, "ensure_venv",
                        lambda ws, python, *rest: (python + "-venv", None))

    def extras(ws, line, python, logs, out, who="patched"):
        installs.append((python, who))
        return None

    monkeypatch.setattr(bench, "ensure_patched_extras", extras)
    ws = Workspace(tmp_path, tmp_path / "cache")
    (tmp_path / "build" / "3.7").mkdir(parents=True)

    def plan(speed=True, line="3.7"):
        del installs[:]
        return bench.plan_columns(ws, LINES[line], {"python": "/p/python3.7"},
                                  tmp_path, lambda text: None, speed)

    return {"ws": ws, "plan": plan, "installs": installs,
            "record": tmp_path / "build" / "3.7" / "interpreter-stock.json"}


def baselines(columns):
    return {c.key: c.baseline for c in columns}


def test_columns_without_a_stock_build_compare_with_pyenv(discovery):
    columns, notes = discovery["plan"]()
    assert baselines(columns) == {
        "patched-c": "stock-c", "patched-py": "stock-py",
        "stock-c": "stock-c", "stock-py": "stock-py",
        "pickle5-c": "stock-c", "upstream-c": "stock-c"}
    assert [c.key for c in columns][:4] == ["patched-c", "patched-py",
                                            "stock-c", "stock-py"]
    assert notes == [bench.different_builds_note(LINES["3.7"])]
    assert "compare different builds" in notes[0]
    assert notes[0].endswith("`python3 -m tools build --stock` gives a "
                             "like-for-like baseline")
    assert discovery["installs"] == [("/p/python3.7", "patched")]
    # Memory alone has no ratios to warn about.
    columns, notes = discovery["plan"](speed=False)
    assert notes == [] and discovery["installs"] == []


def test_columns_with_a_stock_build_make_it_the_patched_baseline(discovery):
    discovery["record"].write_text(json.dumps(
        {"python": sys.executable, "stock": True}))
    columns, notes = discovery["plan"]()
    assert [c.key for c in columns] == [
        "patched-c", "patched-py", "build-c", "build-py", "stock-c",
        "stock-py", "pickle5-c", "upstream-c"]
    assert baselines(columns) == {
        "patched-c": "build-c", "patched-py": "build-py",
        "build-c": "stock-c", "build-py": "stock-py",
        "stock-c": "stock-c", "stock-py": "stock-py",
        "pickle5-c": "stock-c", "upstream-c": "stock-c"}
    same = [c for c in columns if c.role == "same-build"]
    assert {c.python for c in same} == {sys.executable}
    assert {c.impl for c in same} == {"c", "py"}
    assert notes == []
    # pyperf goes into both builds of our own.
    assert discovery["installs"] == [("/p/python3.7", "patched"),
                                     (sys.executable, "stock-build")]


def test_a_stock_build_whose_interpreter_is_gone_is_ignored(discovery):
    discovery["record"].write_text(json.dumps(
        {"python": str(discovery["record"].parent / "gone" / "python3.7")}))
    columns, notes = discovery["plan"]()
    assert "build-c" not in baselines(columns)
    assert baselines(columns)["patched-c"] == "stock-c"
    assert len(notes) == 1 and "build --stock" in notes[0]


def test_no_different_builds_note_without_a_stock_release(discovery,
                                                          monkeypatch):
    monkeypatch.setattr(bench.providers, "find_installed", lambda line: [])
    columns, notes = discovery["plan"]()
    assert notes == []
    assert {c.status for c in columns if c.role == "stock"} == {"n/a"}


def test_different_builds_note_names_the_line():
    assert "`python3 -m tools build --stock --base 3.13`" in \
        bench.different_builds_note(LINES["3.13"])


def test_same_build_columns_are_labelled_with_their_version():
    columns = bench.patched_columns("/p/python3.7", "/s/python3.7")
    for column in columns:
        column.version = "3.7.3"
    bench.label_columns(columns)
    assert [c.label for c in columns] == [
        "patched 3.7.3 C", "patched 3.7.3 Py", "stock 3.7.3 C (same build)",
        "stock 3.7.3 Py (same build)"]


# -- the results document and the table ---------------------------------------

def columns():
    return [
        bench.Column("patched-c", "patched 3.7.3 C", "/p/python3.7", "pickle",
                     "c", "patched", "stock-c", version="3.7.3", protocol=5),
        bench.Column("stock-c", "3.7.16 C", "/s/python", "pickle", "c",
                     "stock", "stock-c", version="3.7.16", protocol=4),
        bench.Column("pickle5-c", "3.7.16+pickle5", "/s/python", "pickle5",
                     "c", "backport", "stock-c", version="3.7.16", protocol=5),
    ]


def ok_cell(ratio, size=SMALL):
    return {"status": "ok", "extra_ratio": ratio,
            "extra_bytes": int(ratio * size), "rss_before": 10 << 20,
            "peak": (10 << 20) + int(ratio * size), "seconds": 0.5,
            "mb_per_s": size / 1e6 / 0.5, "payload_bytes": size,
            "protocol": 4, "best_seconds": 2e-5, "time_ratio": 1.1}


def sample_doc():
    cols = columns()
    rows = []
    for name, title, limit in bench_scenarios.SCENARIOS:
        cells = {"patched-c": ok_cell(1.0), "stock-c": ok_cell(1.0),
                 "pickle5-c": ok_cell(0.0)}
        if name in bench_scenarios.OUT_OF_BAND:
            cells["stock-c"] = {"status": "n/a", "short": "protocol 4",
                                "reason": "protocol 4 has no buffers"}
        rows.append({"name": name, "title": title, "limit": limit,
                     "target_max": limit + 0.05, "cells": cells})
    timings = {"patched-c": {}, "stock-c": {}, "pickle5-c": {}}
    for name in bench_scenarios.SPEED_BENCHMARKS:
        timings["stock-c"][name] = (2e-6, 2e-6, 1e-8, 6)
        timings["patched-c"][name] = (1e-6, 1e-6, 1e-8, 6)
        timings["pickle5-c"][name] = (4e-6, 4e-6, 1e-8, 6)
    timings["patched-c"]["pickle_str"] = (4e-6, 4e-6, 1e-8, 6)
    speed = bench.speed_section(cols, {}, timings)
    return {"schema": bench.SCHEMA, "line": "3.7", "size": SMALL,
            "quick": True, "columns": [bench.asdict(c) for c in cols],
            "memory": {"size": SMALL, "scenarios": rows}, "speed": speed,
            "failures": [], "wall_seconds": 1.0, "files": {}}


def test_speed_ratios_are_against_the_baseline_median():
    speed = sample_doc()["speed"]
    rows = {row["name"]: row["cells"] for row in speed["benchmarks"]}
    assert rows["pickle_dict"]["patched-c"]["ratio"] == pytest.approx(2.0)
    assert rows["pickle_dict"]["pickle5-c"]["ratio"] == pytest.approx(0.5)
    assert rows["pickle_dict"]["stock-c"]["ratio"] == pytest.approx(1.0)
    assert rows["pickle_str"]["patched-c"]["ratio"] == pytest.approx(0.5)
    # five benchmarks at 2x and one at 0.5x
    assert speed["geometric_mean"]["patched-c"] == pytest.approx(
        (2.0 ** 5 * 0.5) ** (1 / 6.0))


def test_speed_without_a_baseline_has_no_ratio():
    cols = columns()
    state = {"stock-c": {"status": "n/a", "short": "no pyperf",
                         "reason": "pyperf is not installed"}}
    timings = {"patched-c": {n: (1e-6, 1e-6, 0, 3)
                             for n in bench_scenarios.SPEED_BENCHMARKS},
               "pickle5-c": {}}
    speed = bench.speed_section(cols, state, timings)
    cells = speed["benchmarks"][0]["cells"]
    assert cells["patched-c"]["ratio"] is None
    assert "3.7.16 C" in cells["patched-c"]["ratio_problem"]
    assert cells["stock-c"]["status"] == "n/a"
    assert cells["pickle5-c"]["status"] == "failed"
    assert speed["geometric_mean"]["patched-c"] is None


def test_table_rows_columns_and_targets():
    table = bench.format_table(sample_doc())
    lines = table.splitlines()
    header = lines[0]
    for label in ("patched 3.7.3 C", "3.7.16 C", "3.7.16+pickle5", "target"):
        assert label in header

    def row(start, *more):
        return next(text for text in lines if text.startswith(start) and
                    all(word in text for word in more))

    # The patched column misses "dump to a file: 0 extra"; the stock
    # column has the same number but is not marked.
    assert row("dump bytearray -> file").split()[4:7] == [
        "+1.00x", "!", "+1.00x"]
    assert row("dump bytearray -> file").endswith("<= 0.05x (limit 0x)")
    assert "!" not in row("dumps bytearray")
    assert "n/a (protocol 4)" in row("out-of-band PickleBuffer",
                                     "20 us (x1.1)")
    assert row("pickle_str").split()[1:4] == ["0.50x", "!", "1.00x"]
    assert row("pickle_dict").split()[1:4] == ["2.00x", "1.00x", "0.50x"]
    assert "n/a (protocol 4) in 3.7.16 C: protocol 4 has no buffers" in lines
    # Every cell of a column ends at the same place as its header.
    end = header.index("3.7.16+pickle5") + len("3.7.16+pickle5")
    for line in lines:
        if line.startswith(("dump", "load", "pickle_", "unpickle_")):
            assert line[end - 1] != " ", line
            assert len(line) == end or line[end] == " ", line


def same_build_doc():
    """A document with a same-build stock column: the patched C column's
    baseline, itself compared with pyenv's 3.7.16."""
    cols = columns()
    cols[0].baseline = "build-c"
    cols.insert(1, bench.Column(
        "build-c", "stock 3.7.3 C (same build)", "/b/python3.7", "pickle",
        "c", "same-build", "stock-c", version="3.7.3", protocol=4))
    timings = {"patched-c": {}, "build-c": {}, "stock-c": {},
               "pickle5-c": {}}
    for name in bench_scenarios.SPEED_BENCHMARKS:
        timings["stock-c"][name] = (2e-6, 2e-6, 1e-8, 6)
        timings["build-c"][name] = (1.5e-6, 1.5e-6, 1e-8, 6)
        timings["patched-c"][name] = (1.5e-6, 1.5e-6, 1e-8, 6)
        timings["pickle5-c"][name] = (2e-6, 2e-6, 1e-8, 6)
    # Faster than pyenv's build, slower than the same build without the
    # series: only the second counts.
    timings["patched-c"]["pickle_str"] = (1.6e-6, 1.6e-6, 1e-8, 6)
    doc = sample_doc()
    doc["columns"] = [bench.asdict(c) for c in cols]
    doc["speed"] = bench.speed_section(cols, {}, timings)
    for row in doc["memory"]["scenarios"]:
        row["cells"]["build-c"] = ok_cell(1.0)
    return doc


def test_patched_ratios_against_the_same_build():
    doc = same_build_doc()
    assert bench.schema_problems(doc) == []
    rows = {row["name"]: row["cells"] for row in doc["speed"]["benchmarks"]}
    assert rows["pickle_dict"]["patched-c"]["ratio"] == pytest.approx(1.0)
    assert rows["pickle_dict"]["patched-c"]["baseline"] == "build-c"
    assert rows["pickle_str"]["patched-c"]["ratio"] == pytest.approx(0.9375)
    assert rows["pickle_dict"]["build-c"]["ratio"] == pytest.approx(4 / 3.0)
    assert rows["pickle_dict"]["pickle5-c"]["ratio"] == pytest.approx(1.0)
    lines = bench.format_table(doc).splitlines()
    assert any(text.startswith("small objects: speed relative to each "
                               "column's baseline") for text in lines)
    assert "speed ratios against stock 3.7.3 C (same build): " \
        "patched 3.7.3 C" in lines
    assert "speed ratios against 3.7.16 C: stock 3.7.3 C (same build), " \
        "3.7.16+pickle5" in lines
    assert any(text.startswith('"C >= pickle5" compares the ratios')
               for text in lines)
    pickle_str = next(text for text in lines if text.startswith("pickle_str"))
    assert pickle_str.split()[1:4] == ["0.94x", "!", "1.33x"]
    pickle_dict = next(text for text in lines
                       if text.startswith("pickle_dict"))
    assert "!" not in pickle_dict
    # The same-build column is measured in the memory scenarios too.
    assert next(text for text in lines if text.startswith(
        "dumps bytearray")).split()[2:5] == ["+1.00x", "+1.00x", "+1.00x"]


def test_table_without_a_same_build_names_its_one_baseline():
    lines = bench.format_table(sample_doc()).splitlines()
    assert "small objects: speed relative to 3.7.16 C (> 1 is faster):" \
        in lines
    assert not any(text.startswith("speed ratios against") for text in lines)


def test_table_of_the_speed_section_alone():
    doc = sample_doc()
    doc["memory"] = None
    table = bench.format_table(doc)
    assert "extra peak RSS" not in table
    assert "geometric mean" in table


def test_results_schema():
    doc = sample_doc()
    assert bench.schema_problems(doc) == []
    json.loads(json.dumps(doc))
    broken = json.loads(json.dumps(doc))
    del broken["memory"]["scenarios"][0]["cells"]["stock-c"]
    del broken["speed"]["benchmarks"][1]["cells"]["patched-c"]["ratio"]
    broken["memory"]["scenarios"][2]["cells"]["pickle5-c"] = {
        "status": "n/a"}
    problems = bench.schema_problems(broken)
    assert len(problems) == 3, problems
    assert bench.schema_problems({"schema": 1}) != []


def test_measured_document_fits_the_schema(tmp_path):
    """run_memory with this interpreter as two columns, as the bench does."""
    directory = tmp_path / "build" / "bench" / "3.7"
    directory.mkdir(parents=True)
    cols = [bench.Column("patched-c", "C", sys.executable, "pickle", "c",
                         "patched", "patched-c"),
            bench.Column("patched-py", "Py", sys.executable, "pickle", "py",
                         "patched", "patched-py")]
    bench.probe_columns(cols, tmp_path)
    assert [c.protocol for c in cols] == [pickle.HIGHEST_PROTOCOL] * 2
    memory = bench.run_memory(directory, cols, bench.MIN_SIZE, tmp_path,
                              lambda text: None)
    doc = {"schema": bench.SCHEMA, "line": "3.7", "size": bench.MIN_SIZE,
           "quick": True, "columns": [bench.asdict(c) for c in cols],
           "memory": memory, "speed": None, "failures": [],
           "wall_seconds": 0.0}
    assert bench.schema_problems(doc) == []
    cells = memory["scenarios"][-2]["cells"]          # oob-picklebuffer
    assert cells["patched-c"]["reference"]["size"] == \
        bench_scenarios.OOB_REFERENCE_SIZE
    assert cells["patched-c"]["time_ratio"] > 0
    table = bench.format_table(doc)
    for title in bench.SHORT_TITLES.values():
        assert table.count("\n" + title) == 2, title
    # The temporary directory of the pickle files is gone.
    assert [p.name for p in directory.iterdir()] == []


def test_read_pyperf_file(tmp_path):
    suite = {"version": "1.0", "metadata": {"loops": 8},
             "benchmarks": [
                 {"metadata": {"name": "pickle_dict"},
                  "runs": [{"warmups": [[1, 5.0]]},
                           {"values": [3.0, 1.0, 2.0]},
                           {"values": [10.0]}]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    median, mean, stdev, count = bench.read_pyperf(path)["pickle_dict"]
    assert (median, mean, count) == (2.5, 4.0, 4)
    assert stdev == pytest.approx(4.0825, rel=1e-3)
    assert bench.pyperf_loops(path, "pickle_dict") == 8
    assert bench.pyperf_loops(path, "unpickle_dict") is None


@pytest.mark.parametrize("text,size", [("512M", 512 << 20), ("2G", 2 << 30),
                                       ("64MiB", 64 << 20),
                                       ("4096k", 4 << 20)])
def test_parse_size(text, size):
    assert bench.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "1M", "-5M", "3T"])
def test_parse_size_rejects(text):
    with pytest.raises(bench.UsageError):
        bench.parse_size(text)


def test_plot_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    message = bench.plot(sample_doc(), Path("/nonexistent"))
    assert "matplotlib" in message and "requirements/dev.txt" in message


def test_plot_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib",
                        reason="pip install -r requirements/dev.txt")
    doc = sample_doc()
    assert bench.plot(doc, tmp_path) is None
    for name in ("memory.png", "speed.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["files"]["memory_png"] == str(tmp_path / "memory.png")


# -- the big-memory lock ------------------------------------------------------

def test_heavy_runs_take_the_lock(tmp_path, monkeypatch):
    lock = tmp_path / "bigmem.lock"
    monkeypatch.setattr(bench, "BIGMEM_LOCK", str(lock))
    with bench.heavy_lock(bench.HEAVY_SIZE, print):
        assert not lock.exists()
    with bench.heavy_lock(bench.HEAVY_SIZE + 1, print):
        with open(lock) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_heavy_run_under_flock_does_not_wait_for_itself(tmp_path,
                                                        monkeypatch):
    lock = tmp_path / "bigmem.lock"
    monkeypatch.setattr(bench, "BIGMEM_LOCK", str(lock))
    with open(lock, "w") as held:
        # As `flock FILE python3 -m tools bench` leaves it: the lock held
        # through a descriptor this process has open.
        fcntl.flock(held, fcntl.LOCK_EX)
        with bench.heavy_lock(4 << 30, print):
            pass


# -- the command line ---------------------------------------------------------

def test_help():
    proc = run_tools("bench", "--help", check=0)
    for option in ("--quick", "--size", "--only", "--base"):
        assert option in proc.stdout
    assert "n/a (reason)" in proc.stdout


def test_which_stock_before_any_stock_build(tmp_path):
    proc = run_tools("which", "--stock", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "no stock (same build) CPython 3.7 "
                       "interpreter yet: run `python3 -m tools build --stock`")
    proc = run_tools("which", "--stock", "--base", "3.13", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "run `python3 -m tools build --base 3.13 "
                       "--stock`")


def test_no_patched_interpreter(tmp_path):
    proc = run_tools("bench", "--quick", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "run `python3 -m tools build`")
    proc = run_tools("bench", "--base", "3.13", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "run `python3 -m tools build --base 3.13`")
    assert not (tmp_path / "build" / "bench").exists()


def test_bad_size_is_a_usage_error(tmp_path):
    proc = run_tools("bench", "--size", "huge", workspace=tmp_path,
                     cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "--size 'huge' is not a size")


def test_requirement_pins_exist():
    for name in ("dev.txt", "bench-py37.txt", "bench-upstream.txt"):
        lines = bench.read_requirements(REPO / "requirements" / name)
        assert lines and all("==" in line for line in lines), name
    py37 = bench.read_requirements(REPO / "requirements" / "bench-py37.txt")
    assert "pickle5==0.0.12" in py37 and "numpy==1.21.6" in py37


# -- publishing ---------------------------------------------------------------

README = """intro
<!-- bench 3.7 -->
an older table
<!-- end bench 3.7 -->
<!-- bench 3.13 -->
the 3.13 table
<!-- end bench 3.13 -->
"""


def test_publish_keeps_the_run_in_docs_and_readme(tmp_path):
    (tmp_path / "README.md").write_text(README)
    directory = tmp_path / "build" / "bench" / "3.7"
    directory.mkdir(parents=True)
    (directory / "memory.png").write_bytes(b"\x89PNG fake")
    doc = dict(sample_doc(), command="python3 -m tools bench --quick",
               started="2026-11-28T09:00:00", host={"cpus": 2},
               files={"json": str(directory / "results.json"),
                      "memory_png": str(directory / "memory.png")})
    ws = Workspace(tmp_path)
    bench.publish(ws, LINES["3.7"], doc, directory)
    readme = (tmp_path / "README.md").read_text()
    assert "an older table" not in readme
    assert "the 3.13 table" in readme and readme.startswith("intro\n")
    assert bench.format_table(doc) in readme
    assert "`python3 -m tools bench --quick`, 2026-11-28T09:00:00" in readme
    assert "(docs/bench/3.7/memory.png)" in readme
    assert "speed.png" not in readme           # no plot, no link
    target = tmp_path / "docs" / "bench" / "3.7"
    assert (target / "memory.png").read_bytes() == b"\x89PNG fake"
    kept = json.loads((target / "results.json").read_text())
    assert kept["files"] == {"json": "results.json",
                             "memory_png": "memory.png"}
    assert kept["memory"] == doc["memory"]
    # Publishing the same run again changes nothing.
    bench.publish(ws, LINES["3.7"], doc, directory)
    assert (tmp_path / "README.md").read_text() == readme


def test_publish_without_the_readme_markers(tmp_path):
    (tmp_path / "README.md").write_text("no markers here\n")
    proc = run_tools("bench", "--publish", "--base", "3.13",
                     workspace=tmp_path, cache=tmp_path / "cache")
    assert_clean_error(proc, 2, "README.md has no lines '<!-- bench 3.13 -->'")
    assert (tmp_path / "README.md").read_text() == "no markers here\n"
