"""`python3 -m tools fuzz` on each built line, and proof that it can fail.

Each test that needs a patched interpreter skips, naming the command
that builds it, when that line is not built.
"""

import os
import re
import signal
import sys
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, interpreter_record, run_tools

LINES = ["3.7", "3.13"]


def built(line):
    record = interpreter_record(line)
    if record is None or not Path(record["python"]).exists():
        pytest.skip("no patched CPython %s interpreter: `python3 -m tools "
                    "build --base %s` enables this test" % (line, line))
    return record["python"]


def sections(stdout):
    """Unpickler heading -> the text of its section of the report."""
    parts = re.split(r"^(C|Python) \(pickle\.\w+\) unpickler: ", stdout,
                     flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def table(section):
    """Outcome -> count, from a section's table."""
    return dict((name, int(n)) for name, n in
                re.findall(r"^  (\S+) +(\d+)$", section, flags=re.M))


@pytest.mark.parametrize("line", LINES)
def test_fuzz_passes_on_the_patched_line(line):
    built(line)
    proc = run_tools("fuzz", "--base", line, "--count", "400", "--seed", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = sections(proc.stdout)
    assert sorted(report) == ["C", "Python"]
    for name, section in report.items():
        assert section.startswith("400 streams, 1200 loads"), section
        assert "verdict: PASS: 0 crashes, 0 timeouts, 0 unraisable errors, " \
               "only documented exception types" in section
        assert "FINDING" not in section
        outcomes = table(section)
        assert sum(outcomes.values()) == 1200, outcomes
        # Some mutated streams still load, most are refused.
        assert outcomes.get("loaded", 0) > 0, outcomes
        assert outcomes["_pickle.UnpicklingError"] > 400, outcomes
        assert "struct.error" not in outcomes and "SystemError" not in outcomes


def test_fuzz_is_deterministic_for_a_seed():
    built("3.7")
    tables = []
    # Whatever the split into workers.
    for jobs in ("2", "1"):
        proc = run_tools("fuzz", "--count", "150", "--seed", "11",
                         "--jobs", jobs, check=0)
        tables.append(dict((k, table(v)) for k, v in
                           sections(proc.stdout).items()))
    other = run_tools("fuzz", "--count", "150", "--seed", "12", check=0)
    assert tables[0] == tables[1]
    assert tables[0] != dict((k, table(v)) for k, v in
                             sections(other.stdout).items())


@pytest.mark.parametrize("kind, finding", [
    ("struct-error", "undocumented struct.error"),
    ("crash", "crash (SIGSEGV)"),
    ("timeout", "timeout"),
    ("unraisable", "unraisable"),
])
def test_the_check_can_fail(kind, finding):
    built("3.7")
    proc = run_tools("fuzz", "--count", "6", "--self-test", kind,
                     "--timeout", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = sections(proc.stdout)
    # The finding is injected into the Python unpickler's loads of stream 1.
    assert "verdict: PASS" in report["C"]
    assert "verdict: FAIL" in report["Python"]
    assert "FINDING %s: stream 1, source bytesio" % finding \
        in report["Python"]
    if kind in ("crash", "timeout"):
        saved = REPO / "build" / "fuzz" / "3.7" / (
            "%s-seed0-1-py-read.pickle" % kind)
        assert saved.exists()
        # Only this campaign's inputs: one per Python source.
        assert len(list(saved.parent.glob("*.pickle"))) == 3
        # The other streams still ran, in restarted workers.
        assert report["Python"].startswith("5 streams, 15 loads")
        assert report["C"].startswith("6 streams, 18 loads")
    if kind == "crash":
        # The printed command reproduces the crash.
        command = re.search(r"reproduce: (.*--source read\b.*)$",
                            report["Python"], flags=re.M).group(1)
        replay = subprocess.run(command, shell=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        # The shell reports the signal as 128 + its number.
        assert replay.returncode == 128 + signal.SIGSEGV, replay


def test_finds_the_known_bugs_of_stock_3_13_0():
    """Against an interpreter with real bugs, not injected ones: stock
    3.13.0 leaks struct.error from the Python unpickler on truncated
    input, and prints unraisable SystemErrors when a bytearray
    allocation fails (issue 12)."""
    python = Path(os.path.expanduser("~/.pyenv/versions/3.13.0/bin/python3.13"))
    if not python.exists():
        pytest.skip("no stock CPython 3.13.0: `pyenv install 3.13.0` "
                    "enables this test")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [str(python), "-m", "fuzz", "--count", "3000", "--out",
         str(REPO / "build" / "fuzz" / "stock-3.13.0")],
        cwd=str(REPO), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = sections(proc.stdout)
    assert "FINDING undocumented struct.error" in report["Python"]
    assert "deallocated bytearray object has exported buffers" in report["C"]
    assert "verdict: FAIL" in report["C"]


def run_in_driver(python, code):
    """The output of CODE run by PYTHON with the fuzz package importable."""
    return subprocess.run([python, "-c", code], cwd=str(REPO),
                          env=dict(os.environ, PYTHONHASHSEED="0",
                                   PYTHONPATH=str(REPO)),
                          stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout


def test_find_class_refuses_anything_outside_the_whitelist():
    python = built("3.7")
    code = ("import pickle, io\n"
            "from fuzz import driver\n"
            "d = driver.Driver(0)\n"
            "for u in driver.UNPICKLERS:\n"
            "    for s in driver.SOURCES:\n"
            "        print(d.attempt(0, u, s, b'\\x80\\x05cos\\nsystem\\n"
            "\\x8c\\x04echo\\x85R.', d.seeds[0]))\n")
    lines = run_in_driver(python, code).splitlines()
    assert len(lines) == 6
    for line in lines:
        assert line == "(<class '_pickle.UnpicklingError'>, 'doc', None)"


@pytest.mark.parametrize("args, fragment", [
    (["--limit", "lots"], "--limit: 'lots' is not a size such as 2G"),
    (["--limit", "1M"], "too small"),
    (["--count", "0"], "'0' is not a number >= 1"),
    (["--jobs", "two"], "'two' is not a number >= 1"),
    (["--timeout", "0"], "'0' is not a number > 0"),
])
def test_user_mistakes(args, fragment):
    built("3.7")
    assert_clean_error(run_tools("fuzz", *args), 2, fragment)


def test_no_interpreter_is_a_clean_error(tmp_path):
    proc = run_tools("fuzz", workspace=tmp_path)
    assert_clean_error(proc, 2, "run `python3 -m tools build`")


def test_a_stream_cannot_change_how_later_streams_load():
    """BUILD with slot state does setattr() on any object, the driver's
    whitelisted classes too; the driver undoes it after each load."""
    python = built("3.7")
    code = ("from fuzz import corpus, driver\n"
            "d = driver.Driver(0)\n"
            "before = corpus.Point.__reduce__\n"
            "for u in driver.UNPICKLERS:\n"
            "    print(d.attempt(0, u, 'bytesio', b'\\x80\\x05cfuzz.corpus\\n"
            "Point\\nN}(\\x8c\\x04evil\\x8c\\x01x\\x8c\\n__reduce__K\\x01u"
            "\\x86b.', d.seeds[0])[1])\n"
            "    print(hasattr(corpus.Point, 'evil'),"
            " corpus.Point.__reduce__ is before)\n")
    # The stream loads (it is valid), and leaves no trace.
    assert run_in_driver(python, code).splitlines() == ["ok", "False True"] * 2


@pytest.mark.parametrize("worker, message", [
    ("import sys; sys.stderr.write('boom\\n'); sys.exit(3)",
     "a worker failed to start (exit 3):\nboom"),
    ("import sys; print('R 1 0 1', flush=True); sys.exit(3)",
     "more than 5 workers died"),
])
def test_a_broken_worker_stops_the_campaign(tmp_path, worker, message):
    """Rather than restarting forever, or passing with nothing run."""
    code = ("import sys\n"
            "import fuzz.campaign as c\n"
            "c.MAX_RESTARTS = 5\n"
            "c.Campaign.command = lambda self, *extra: "
            "[sys.executable, '-c', %r]\n"
            "sys.exit(c.main(['--count', '50', '--out', %r]))\n"
            % (worker, str(tmp_path)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: " + message), proc.stderr
