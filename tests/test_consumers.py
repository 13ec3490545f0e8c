"""The patched 3.7 under its real consumers: cloudpickle, numpy and dask.

Each consumer runs in a plain `python -m venv` of the interpreter, with the
pins of requirements/consumers-3.7.txt, cached under build/consumers/ by a
hash of the pins and the interpreter (re-runs take seconds):

- cloudpickle 2.2.1's own test suite, from its sdist, with cloudpickle on
  the patched C Pickler.  Its failures must be exactly EXPECTED_FAILURES,
  the tests that fail the same way on stock 3.7 with the pickle5 backport;
  the same suite is run there too (test_cloudpickle_suite_on_backport), so
  the list cannot go stale unnoticed.
- tests/consumers/dask_spill.py: a dask.distributed LocalCluster of two
  worker processes on 127.0.0.1 moves a large user object from one worker
  to the other at protocol 5 and spills it to disk, and the workers' peak
  RSS is bounded; once with a payload of an importable class (plain
  pickle: every build), once with a class of __main__ and a lambda
  (cloudpickle: the C Pickler only), and once the latter on stock 3.7 with
  pickle5.  CONSUMERS_DASK_MIB sets the payload (512 by default).

Measurements go to build/consumers/results.json and into pytest's warnings
summary.  What cannot run here is skipped with the reason and the command
that enables it: no patched interpreter, no C pickler (overlay build), no
stock 3.7 for the baseline, or no PyPI to install the consumers from.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import REPO, interpreter_record

HELPERS = Path(__file__).with_name("consumers")
REQUIREMENTS = REPO / "requirements" / "consumers-3.7.txt"
CACHE = REPO / "build" / "consumers"
RESULTS = CACHE / "results.json"
# A fresh 3.7 venv has pip 19, which picks releases that need a newer
# Python and then fails; 24.1 dropped 3.7.
PIP = "pip>=22,<24.1"
# Bump when the way a venv is made changes, so that cached ones are redone.
VENV_RECIPE = "1"
DASK_MIB = int(os.environ.get("CONSUMERS_DASK_MIB", "512"))

BUILD_COMMAND = "python3 -m tools build"
FULL_BUILD_COMMAND = ("python3 -m tools base import PATH (a CPython 3.7 "
                      "source tree or tarball), then python3 -m tools build")

# cloudpickle 2.2.1's tests that fail on the patched build and fail the
# same way on stock CPython 3.7.16 with pickle5 0.0.12, by test id, each
# with its reason.  Empty: on stock 3.7.16 + pickle5 the whole suite passes
# (257 passed, 3 skipped) when run with -s, as below.  Without -s three
# tests fail there for pytest's sake alone: test_pickling_file_handles (of
# CloudPickleTest and Protocol2CloudPickleTest) and
# CloudPickleFileTests::test_pickling_special_file_handles pickle
# sys.stdout and sys.stderr, which pytest's capture has replaced by its
# EncodedFile ("TypeError: cannot serialize 'EncodedFile' object");
# CAPTURE_SENSITIVE asserts that they run and pass with -s.
EXPECTED_FAILURES = {}
CAPTURE_SENSITIVE = {
    "tests.cloudpickle_test.CloudPickleTest::test_pickling_file_handles",
    "tests.cloudpickle_test.Protocol2CloudPickleTest::"
    "test_pickling_file_handles",
    "tests.cloudpickle_file_test.CloudPickleFileTests::"
    "test_pickling_special_file_handles",
}
# The suite's own skips on 3.7, identical on both interpreters.
EXPECTED_SKIPS = {
    # positional-only parameters are 3.8 syntax
    "tests.cloudpickle_test.CloudPickleTest::"
    "test_interactively_defined_func_with_positional_only_argument",
    "tests.cloudpickle_test.Protocol2CloudPickleTest::"
    "test_interactively_defined_func_with_positional_only_argument",
    # out-of-band buffers need protocol 5; this class pickles at protocol 2
    "tests.cloudpickle_test.Protocol2CloudPickleTest::"
    "test_out_of_band_buffers",
}
# Proof that the suite ran at protocol 5 with out-of-band buffers.
MUST_PASS = {"tests.cloudpickle_test.CloudPickleTest::test_out_of_band_buffers"}

NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|"
    r"Connection refused|ConnectTimeout|ReadTimeout|timed out")


def loud_skip(message):
    """pytest.skip, and say so in the captured output too."""
    print("\nSKIPPED: " + message)
    pytest.skip(message)


def pin(name, requirements=REQUIREMENTS):
    for line in requirements.read_text().splitlines():
        match = re.match(r"\s*%s==(\S+)" % re.escape(name), line, re.I)
        if match:
            return match.group(1)
    raise AssertionError("no pin of %s in %s" % (name, requirements))


def record_result(name, data):
    CACHE.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = dict(data, recorded=time.strftime("%Y-%m-%dT%H:%M:%S"))
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def run(command, what, timeout=900, **kwargs):
    proc = subprocess.run([str(c) for c in command], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kwargs)
    if proc.returncode != 0:
        tail = proc.stdout[-4000:]
        if NETWORK_ERRORS.search(proc.stdout):
            loud_skip("%s: PyPI cannot be reached (%s); with network access, "
                      "`make test` (or `pytest tests/test_consumers.py`) "
                      "installs the consumers into %s once and caches them"
                      % (what, NETWORK_ERRORS.search(proc.stdout).group(0),
                         CACHE))
        pytest.fail("%s failed (%d):\n%s" % (what, proc.returncode, tail))
    return proc.stdout


class ConsumerVenv:
    """A plain venv of PYTHON with the consumers and cloudpickle's tests."""

    def __init__(self, python, extra=()):
        self.base_python = Path(python)
        self.extra = list(extra)
        identity = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version)"],
            stdout=subprocess.PIPE, text=True, check=True).stdout
        key = hashlib.sha256("\0".join(
            [VENV_RECIPE, PIP, REQUIREMENTS.read_text(),
             str(Path(python).resolve()), identity] + self.extra).encode()
        ).hexdigest()[:16]
        self.root = CACHE / ("venv-" + key)
        self.python = self.root / "bin" / "python"
        self.ready = self.root / "ready.json"
        self.cloudpickle_src = self.root / ("cloudpickle-" + pin("cloudpickle"))

    def pip(self, *args, what):
        return run([self.python, "-m", "pip", "--disable-pip-version-check",
                    "--timeout", "30", "--retries", "2"] + list(args), what)

    def ensure(self):
        if self.ready.exists():
            return self
        started = time.perf_counter()
        if self.root.exists():
            shutil.rmtree(str(self.root))
        CACHE.mkdir(parents=True, exist_ok=True)
        # A plain venv: neither the prefix's site-packages nor the host's.
        run([self.base_python, "-m", "venv", self.root], "python -m venv")
        self.pip("install", "--quiet", PIP, what="pip install %s" % PIP)
        self.pip("install", "--quiet", "-r", REQUIREMENTS, *self.extra,
                 what="pip install -r %s" % REQUIREMENTS.name)
        version = pin("cloudpickle")
        sdists = self.root / "sdist"
        self.pip("download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 "--dest", sdists, "cloudpickle==" + version,
                 what="pip download the cloudpickle %s sdist" % version)
        (archive,) = sdists.glob("cloudpickle-%s.tar.gz" % version)
        with tarfile.open(str(archive)) as tar:
            tar.extractall(str(self.root))
        # The suite must test the installed cloudpickle, not the sdist's
        # copy beside tests/ (pytest puts that directory first on sys.path).
        shutil.rmtree(str(self.cloudpickle_src / "cloudpickle"))
        self.pip("install", "--quiet",
                 self.cloudpickle_src / "tests" / "cloudpickle_testpkg",
                 what="pip install cloudpickle_testpkg")
        self.pip("check", what="pip check")
        freeze = self.pip("freeze", what="pip freeze").split()
        self.ready.write_text(json.dumps({
            "python": str(self.base_python), "freeze": freeze,
            "seconds": time.perf_counter() - started}, indent=2))
        self.prune()
        return self

    def prune(self):
        """Remove the venvs of this interpreter that this one replaces."""
        for other in CACHE.glob("venv-*"):
            ready = other / "ready.json"
            if other == self.root or not ready.exists():
                continue
            if json.loads(ready.read_text())["python"] == str(self.base_python):
                shutil.rmtree(str(other))

    def probe(self):
        out = run([self.python, HELPERS / "probe.py"], "probe.py")
        return json.loads(out)


def patched_record():
    record = interpreter_record("3.7")
    if record is None or not Path(record["python"]).exists():
        loud_skip("consumers of protocol 5: no patched CPython 3.7 is built; "
                  "`%s` builds it" % BUILD_COMMAND)
    return record


def stock_37():
    """The newest stock CPython 3.7 of pyenv, for the pickle5 baseline."""
    best = None
    for prefix in Path(os.path.expanduser("~/.pyenv/versions")).glob("3.7.*"):
        parts = prefix.name.split(".")
        python = prefix / "bin" / "python3.7"
        if len(parts) == 3 and all(p.isdigit() for p in parts) and \
                python.exists():
            version = tuple(int(p) for p in parts)
            if best is None or version > best[0]:
                best = (version, python)
    return best[1] if best else None


@pytest.fixture(scope="module")
def patched_venv():
    record = patched_record()
    venv = ConsumerVenv(record["python"]).ensure()
    probe = venv.probe()
    # A plain venv of the patched interpreter: `import pickle5` must reach
    # the standard pickle from the stdlib directory, not from site-packages.
    assert probe["prefix"] != probe["base_prefix"], probe
    assert probe["pickle5_is_pickle"], probe
    assert probe["pickle_highest_protocol"] == 5, probe
    assert probe["cloudpickle_default_protocol"] == 5, probe
    return record, venv, probe


@pytest.fixture(scope="module")
def backport_venv():
    python = stock_37()
    if python is None:
        loud_skip("baseline of stock 3.7 with the pickle5 backport: no stock "
                  "CPython 3.7 in pyenv; `pyenv install 3.7.16` enables it")
    pickle5 = "pickle5==" + pin("pickle5", REPO / "requirements" /
                                "bench-py37.txt")
    venv = ConsumerVenv(python, extra=[pickle5]).ensure()
    probe = venv.probe()
    assert probe["pickle_highest_protocol"] == 4, probe
    assert probe["pickle5_highest_protocol"] == 5, probe
    assert probe["cloudpickle_compat_pickle"] == "pickle5", probe
    return python, venv, probe


def junit_outcomes(path):
    outcomes = {}
    for case in ElementTree.parse(str(path)).getroot().iter("testcase"):
        test_id = "%s::%s" % (case.get("classname"), case.get("name"))
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                break
            if child.tag == "skipped":
                outcome = "skipped"
        outcomes[test_id] = outcome
    return outcomes


def run_cloudpickle_suite(venv, tmp_path):
    """cloudpickle's suite as its CI runs it (tests/ on PYTHONPATH), with -s
    so that sys.stdout is the process's own file (see EXPECTED_FAILURES)."""
    report = tmp_path / "junit.xml"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(venv.python), "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider",
         "--junitxml", str(report), "tests"],
        cwd=str(venv.cloudpickle_src), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900,
        env=dict(os.environ, PYTHONPATH="tests"))
    seconds = time.perf_counter() - started
    assert report.exists(), proc.stdout[-4000:]
    outcomes = junit_outcomes(report)
    summary = {o: sorted(t for t, v in outcomes.items() if v == o)
               for o in ("passed", "failed", "skipped")}
    counts = {o: len(t) for o, t in summary.items()}
    return {"counts": counts, "failed": summary["failed"],
            "skipped": summary["skipped"], "passed": summary["passed"],
            "seconds": seconds, "returncode": proc.returncode,
            "tail": proc.stdout[-3000:]}


def check_suite(result):
    failed, passed = set(result["failed"]), set(result["passed"])
    unexpected = sorted(failed - set(EXPECTED_FAILURES))
    fixed = sorted(set(EXPECTED_FAILURES) - failed)
    assert not unexpected, "new failures:\n%s\n%s" % (
        "\n".join(unexpected), result["tail"])
    assert not fixed, "expected failures that passed (update " \
        "EXPECTED_FAILURES): %s" % fixed
    assert set(result["skipped"]) == EXPECTED_SKIPS, result["skipped"]
    assert CAPTURE_SENSITIVE | MUST_PASS <= passed, \
        sorted((CAPTURE_SENSITIVE | MUST_PASS) - passed)
    # The whole suite ran, not a part of it.
    assert result["counts"]["passed"] >= 250, result["counts"]
    assert result["returncode"] == (1 if failed else 0), result["tail"]


def announce(name, text):
    print("\n%s: %s" % (name, text))
    warnings.warn("%s: %s" % (name, text))


def test_cloudpickle_suite_on_backport(backport_venv, tmp_path):
    python, venv, probe = backport_venv
    result = run_cloudpickle_suite(venv, tmp_path)
    record_result("cloudpickle suite, stock %s + pickle5" % probe["python"],
                  dict(result, tail=None, passed=None, probe=probe))
    announce("cloudpickle %s suite on stock %s + pickle5" % (
        probe["cloudpickle"], probe["python"]),
        "%(passed)d passed, %(failed)d failed, %(skipped)d skipped" %
        result["counts"] + " in %.1f s" % result["seconds"])
    check_suite(result)


def test_cloudpickle_suite_on_patched_c_pickler(patched_venv, tmp_path):
    record, venv, probe = patched_venv
    if not record["c_accelerator"]:
        loud_skip("cloudpickle's suite on the patched C Pickler: this %s "
                  "build has no C _pickle, and cloudpickle at protocol 5 "
                  "subclasses it (it would run on the pure-Python pickler, "
                  "which it does not support); %s enables it"
                  % (record["mode"], FULL_BUILD_COMMAND))
    assert probe["cloudpickle_on_c_pickler"], probe["cloudpickle_pickler_mro"]
    assert probe["cloudpickle_compat_pickle"] == "pickle", probe
    result = run_cloudpickle_suite(venv, tmp_path)
    record_result("cloudpickle suite, patched %s %s" % (
        record["base_version"], record["mode"]),
        dict(result, tail=None, passed=None, probe=probe))
    announce("cloudpickle %s suite on the patched %s (%s)" % (
        probe["cloudpickle"], record["base_version"], record["mode"]),
        "%(passed)d passed, %(failed)d failed, %(skipped)d skipped" %
        result["counts"] + " in %.1f s" % result["seconds"])
    check_suite(result)


def run_dask(venv, mode, tmp_path, *options):
    out = tmp_path / "dask.json"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(venv.python), str(HELPERS / "dask_spill.py"), "--size-mib",
         str(DASK_MIB), "--mode", mode, "--out", str(out)] + list(options),
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert out.exists(), proc.stdout[-4000:]
    results = json.loads(out.read_text())
    results["seconds"] = seconds
    return proc, results


def dask_summary(results):
    mib = float(1 << 20)
    memory, ratios = results.get("memory", {}), results.get("ratios", {})
    workers = results.get("workers", {})
    parts = ["payload %d MiB" % (results["size"] / mib)]
    if "B_after_receive" in memory:
        a, b = workers["A"], workers["B"]
        parts.append(
            "sender A: baseline peak %.0f MiB, after create %.0f MiB, after "
            "send %.0f MiB; receiver B: baseline peak %.0f MiB, after "
            "receive %.0f MiB" % (
                memory["baseline"][a]["peak"] / mib,
                memory["A_after_create"]["peak"] / mib,
                memory["A_after_send"]["peak"] / mib,
                memory["baseline"][b]["peak"] / mib,
                memory["B_after_receive"]["peak"] / mib))
    if ratios:
        parts.append("extra peak over the payload: A create %(A_create_over"
                     "_payload).2fx, A send +%(A_send_extra_over_payload).2fx,"
                     " B receive %(B_receive_over_payload).2fx" % ratios)
    if "transfer_seconds" in results:
        parts.append("transfer %.2f s" % results["transfer_seconds"])
    parts.append("script %.1f s" % results["seconds"])
    return "; ".join(parts)


def check_dask(proc, results, name):
    record_result(name, results)
    announce(name, dask_summary(results))
    assert proc.returncode == 0 and results["ok"], \
        results.get("error") or proc.stdout[-4000:]


def test_dask_moves_and_spills_without_copies(patched_venv, tmp_path):
    """A payload of an importable class: distributed's plain pickle path,
    which every build has (the C Pickler, or the Python one of an overlay
    build)."""
    record, venv, probe = patched_venv
    proc, results = run_dask(venv, "patched", tmp_path, "--no-lambda")
    check_dask(proc, results, "dask %s, importable payload, on the patched "
               "%s (%s)" % (results.get("versions", {}).get("distributed"),
                            record["base_version"], record["mode"]))
    pickler = results["pickle_path_on_A"]["pickler"]
    if record["c_accelerator"]:
        assert pickler == "_pickle.Pickler", pickler
    else:
        assert pickler == "pickle._Pickler", pickler


def test_dask_with_cloudpickle(patched_venv, tmp_path):
    """A payload of a class of __main__ and a lambda: cloudpickle's path."""
    record, venv, probe = patched_venv
    if not record["c_accelerator"]:
        loud_skip("dask with cloudpickle (a payload class of __main__ and "
                  "submit(lambda)): this %s build has no C _pickle, and "
                  "cloudpickle %s at protocol 5 needs it (on the pure-Python "
                  "Pickler its class attribute `dispatch` hides the "
                  "pickler's own: \"TypeError: can't pickle function "
                  "objects\"); %s enables it"
                  % (record["mode"], probe["cloudpickle"],
                     FULL_BUILD_COMMAND))
    proc, results = run_dask(venv, "patched", tmp_path, "--by-value")
    check_dask(proc, results, "dask %s, payload by value and a lambda, on the "
               "patched %s (%s)" % (
                   results.get("versions", {}).get("distributed"),
                   record["base_version"], record["mode"]))
    assert results["pickle_path_on_A"]["pickler"] == "_pickle.Pickler"


def test_dask_with_cloudpickle_on_backport(backport_venv, tmp_path):
    """The same on stock 3.7 with pickle5, for comparison."""
    python, venv, probe = backport_venv
    proc, results = run_dask(venv, "backport", tmp_path, "--by-value")
    check_dask(proc, results, "dask %s, payload by value and a lambda, on "
               "stock %s + pickle5" % (
                   results.get("versions", {}).get("distributed"),
                   probe["python"]))
