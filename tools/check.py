"""Check that every prefix of the series builds and passes the pickle tests.

  check          static checks (a NEWS entry per patch that blurb accepts,
                 new-files/<line>/ holds exactly the files the patches add,
                 `git am` on the pristine base gives the tree of `tools
                 apply`), then build each prefix out of tree in
                 build/<line>/check/ and run the pickle tests; stops at the
                 first patch that breaks the build or the tests
  check --fast   only the static checks
  check --docs   also build the docs with the line's pinned Sphinx and fail
                 on warnings in the .rst files the series touches

With only an installed base, each prefix is applied to its Lib/ files and
byte-compiled, and what was skipped is said.  Logs: build/<line>/check/logs.
"""

import fcntl
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .model import basestore, newfiles, news
from .model.make import (applied_paths, configure_and_make, count_warnings,
                          run_logged)
from .model.tree import apply_series, git_am_identity
from .model.errors import Failure, UsageError
from .model.series import Series
from .model.workspace import CORE_TESTS, PICKLE_TESTS, base_option

# Every prefix is a full build: the core tests run too.
TESTS = PICKLE_TESTS + CORE_TESTS
# What setup.py prints when an extension module of the tree did not build
# or did not import; make itself succeeds all the same.
EXTENSION_FAILURES = re.compile(
    r"^(Failed to build these modules:|Following modules built successfully "
    r"but were removed because they could not be imported:)\s*$")
FAILED_TESTS = re.compile(r"^\d+ tests? failed( again)?:$")


def add_arguments(parser):
    parser.add_argument("--fast", action="store_true",
                        help="static checks only: no build, no tests")
    parser.add_argument("--docs", action="store_true",
                        help="also build the docs and fail on Sphinx warnings "
                             "in the .rst files the series touches")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="parallel make jobs (default: the core count)")
    parser.add_argument("--docs-python", metavar="PYTHON",
                        help="interpreter for the docs venv (default: an "
                             "installed Python of the line)")


def elapsed(seconds):
    seconds = int(round(seconds))
    return "%dm%02ds" % divmod(seconds, 60) if seconds >= 60 else "%ds" % seconds


# -- static checks ------------------------------------------------------------

def static_checks(ws, line, series, source, out):
    """NEWS entry per patch, validated by blurb, the copies of the added
    files, and git am of the series; the failures, as one-line texts."""
    parser = news.load_blurb()
    if parser is None:
        raise UsageError("blurb is not installed for this Python; it is "
                         "needed to validate the NEWS entries of the series: "
                         "%s" % news.INSTALL_HINT)
    out("static checks (blurb %s):" % parser[1])
    failing = []
    with newfiles.extracted(series.patches) as added_root:
        for patch in series.patches:
            entries = news.patch_entries(patch)
            problems = [] if entries else [
                "adds no NEWS entry (Misc/NEWS.d/next/<Section>/<file>.rst, "
                "committed with the patch)"]
            accepted = []
            for path in entries:
                metadata, problem = news.validate(parser, added_root / path)
                if problem:
                    problems.append("%s: %s" % (path, problem))
                else:
                    accepted.append("%s (%s, %s)" % (
                        Path(path).name, metadata.get("section"),
                        metadata["issue"]))
            for problem in problems:
                out("  FAIL %s: %s" % (patch.name, problem))
            if problems:
                failing.append(patch.name)
            else:
                out("  ok   %s: NEWS %s" % (patch.name, ", ".join(accepted)))
    failures = ["no valid NEWS entry in %s" % ", ".join(failing)] \
        if failing else []
    copies = newfiles.copy_problems(ws, line, series)
    for _kind, message in copies:
        out("  FAIL " + message)
    if copies:
        failures.append("new-files/%s disagrees with the patches" % line.name)
    else:
        out("  ok   new-files/%s holds exactly the files the patches add"
            % line.name)
    if source is None or source.version != line.reference:
        out("  SKIPPED git am of the series on the pristine base: it needs the "
            "CPython %s source base (`python3 -m tools base download%s`)"
            % (line.reference, base_option(line)))
    else:
        try:
            git_am_identity(ws, line, out=lambda text: out("  ok   " + text))
        except Failure as exc:
            out("  FAIL " + exc.message)
            failures.append(exc.message)
    return failures


# -- one prefix ---------------------------------------------------------------

def listed_after(log, header, more):
    """The words on the lines after each line of LOG that matches HEADER,
    as long as MORE(line) holds."""
    names = []
    lines = log.read_text(errors="replace").splitlines()
    for index, text in enumerate(lines):
        if header.match(text.strip()):
            for following in itertools.takewhile(more, lines[index + 1:]):
                names.extend(following.split())
    return names


def failed_extensions(log):
    """Extension modules setup.py reports as not built or not importable."""
    return listed_after(log, EXTENSION_FAILURES, str.strip)


def clean_env():
    return {name: value for name, value in os.environ.items() if name not in
            ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")}


def failed_tests(obj, tests, log):
    """regrtest on the built python; what failed, or None."""
    python = next((obj / name for name in ("python", "python.exe")
                   if (obj / name).exists()), None)
    if python is None:
        raise Failure("the build in %s made no python" % obj)
    command = [str(python), "-m", "test"] + tests
    with open(log, "w") as f:
        f.write("$ %s\n" % " ".join(command))
        f.flush()
        proc = subprocess.run(command, cwd=str(obj), stdout=f,
                              stderr=subprocess.STDOUT, env=clean_env())
    if proc.returncode == 0:
        return None
    failed = listed_after(log, FAILED_TESTS,
                          lambda text: text.startswith(" "))
    return ", ".join(dict.fromkeys(failed)) or \
        "exit status %d" % proc.returncode


# -- the walk -----------------------------------------------------------------

def walk_full(ws, line, series, check_dir, jobs, out):
    """Build and test every prefix in CHECK_DIR/src; the first failure."""
    src, obj, logs = check_dir / "src", check_dir / "obj", check_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    total = len(series.patches)
    fingerprint = series.fingerprint()
    warnings_record = check_dir / "warnings.json"
    warnings_record.unlink(missing_ok=True)
    for number, patch in enumerate(series.patches, 1):
        started = time.monotonic()
        label = "prefix %d/%d (..%s)" % (number, total, patch.name)
        try:
            applied = apply_series(ws, line, kind="source", upto=number, src=src)
        except Failure as exc:
            out("%s: FAILED to apply" % label)
            return "%s (prefix %d/%d)" % (exc.message, number, total)
        for name, context in applied.get("fuzzed", {}).items():
            out("    note: %s applies only with %d line(s) of context to this "
                "base" % (name, context))
        build_log = logs / ("prefix-%d-build.log" % number)
        paths = applied_paths(src)
        if number == total:
            # make recompiles only what changed since the previous prefix:
            # have it compile every C file of the series once more, so that
            # this log holds all their warnings (tools patchcheck reads them).
            for path in paths:
                if path.endswith(".c") and (src / path).exists():
                    os.utime(src / path)
        try:
            configure_and_make(src, obj, [], applied["head"], jobs, build_log)
            broken = failed_extensions(build_log)
            if broken:
                raise Failure("extension module(s) %s did not build or import "
                              "(see %s)" % (", ".join(broken), build_log))
        except Failure as exc:
            out("%s: build FAILED after %s" % (label, elapsed(time.monotonic()
                                                               - started)))
            first = [text.strip() for text in
                     build_log.read_text(errors="replace").splitlines()
                     if re.search(r"\berror:|undefined reference", text)]
            if first:
                out("    " + first[0])
            return "%s breaks the build (prefix %d/%d): %s" % (
                patch.name, number, total, exc.message)
        built = time.monotonic() - started
        warnings = count_warnings(build_log, paths)
        tests = [name for name in TESTS
                 if (src / "Lib" / "test" / (name + ".py")).exists()]
        test_log = logs / ("prefix-%d-tests.log" % number)
        failed = failed_tests(obj, tests, test_log)
        out("%s: build ok (%s, %d warning(s) in the series' files), %s %s (%s)"
            % (label, elapsed(built), len(warnings), " ".join(tests),
               "FAIL" if failed else "pass",
               elapsed(time.monotonic() - started - built)))
        for text in warnings:
            out("    warning: " + text)
        if failed:
            return "%s breaks the tests (prefix %d/%d): %s failed; see %s" % (
                patch.name, number, total, failed, test_log)
        if number == total:
            warnings_record.write_text(json.dumps(
                {"fingerprint": fingerprint, "warnings": warnings,
                 "log": str(build_log), "head": applied["head"]},
                indent=2) + "\n")
    return None


def walk_installed(ws, line, series, check_dir, installed, out):
    """Apply every prefix to an installed base and byte-compile its Lib/."""
    src = check_dir / "src-installed"
    python = installed.record.get("executable")
    total = len(series.patches)
    for number, patch in enumerate(series.patches, 1):
        label = "prefix %d/%d (..%s)" % (number, total, patch.name)
        try:
            applied = apply_series(ws, line, kind="installed", upto=number,
                                   src=src)
        except Failure as exc:
            out("%s: FAILED to apply" % label)
            return "%s (prefix %d/%d)" % (exc.message, number, total)
        lib = [p for p in applied_paths(src)
               if p.startswith("Lib/") and p.endswith(".py")]
        compiled = "no Lib/*.py changed"
        if lib and python and Path(python).exists():
            proc = subprocess.run([python, "-m", "py_compile"] + lib,
                                  cwd=str(src), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  env=clean_env())
            if proc.returncode != 0:
                out("%s: Lib/ does not compile" % label)
                detail = (proc.stdout.strip().splitlines() or ["?"])[-1]
                return "%s breaks Lib/ (prefix %d/%d): %s" % (
                    patch.name, number, total, detail)
            compiled = "%d Lib file(s) compile with %s" % (len(lib), python)
        elif lib:
            compiled = "Lib/ not compiled: the installed interpreter is gone"
        skipped = sorted({path for paths in applied["skipped"].values()
                          for path in paths})
        out("%s: applies to the installed base (%s); not in that base: %s"
            % (label, compiled, ", ".join(skipped) or "nothing"))
    return None


# -- docs ---------------------------------------------------------------------

def docs_python(ws, line, explicit):
    if explicit:
        if not Path(explicit).exists():
            raise UsageError("--docs-python %s does not exist" % explicit)
        return explicit
    installed = basestore.load(ws, line, "installed")
    if installed and Path(installed.record.get("executable", "")).exists():
        return installed.record["executable"]
    from .model.providers import find_installed
    found = find_installed(line)
    if not found:
        raise UsageError("the docs of %s build with a Python %s, and none is "
                         "installed: install one (pyenv install %s) or name "
                         "it with --docs-python" % (line.name, line.name,
                                                    line.name))
    return found[0]


def docs_venv(ws, line, python, log, out):
    """A venv with the pinned docs requirements of the line; its bin/."""
    relative = "requirements/docs-py%s.txt" % line.name.replace(".", "")
    requirements = ws.root / relative
    if not requirements.exists():
        raise UsageError("no pinned docs requirements for %s (%s)"
                         % (line.name, relative))
    venv = ws.build_dir(line) / "docs-venv"
    stamp = venv / "zerocopy-requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes() +
                            python.encode()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return venv / "bin"
    if venv.exists():
        shutil.rmtree(venv)
    out("creating the docs venv %s with %s and %s" % (venv, python, relative))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    for command, what in (
            ([python, "-m", "venv", str(venv)], "creating the venv"),
            (pip + ["install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "-r", str(requirements)],
             "installing %s (from PyPI)" % relative),
            (pip + ["check"], "pip check of the docs requirements")):
        run_logged(command, ws.root, log, what)
    stamp.write_text(wanted + "\n")
    return venv / "bin"


def build_docs(ws, line, src, jobs, python, out):
    """Build Doc/ of SRC like CPython's Doc/Makefile; (problems, Sphinx)."""
    logs = ws.build_dir(line) / "check" / "logs"
    bin_dir = docs_venv(ws, line, python, logs / "docs-venv.log", out)
    logs.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([str(bin_dir / "python"), "-c",
                              "import sphinx; print(sphinx.__version__)"],
                             stdout=subprocess.PIPE, text=True).stdout.strip()
    version = version or "?"
    touched = [path for path in applied_paths(src)
               if path.startswith("Doc/") and path.endswith((".rst", ".inc"))]
    # Sphinx reports the warnings of the files it reads: make it read the
    # ones the series touches again, even when they did not change.
    for path in touched:
        os.utime(src / path)
    warnings_file = logs / "docs-warnings.txt"
    warnings_file.unlink(missing_ok=True)
    log = logs / "docs.log"
    log.write_text("")
    started = time.monotonic()
    out("building the docs with Sphinx %s (Doc/Makefile's check and html; "
        "log: %s)" % (version, log))
    # `make check` runs rstlint on Doc/; build/ (the output of earlier
    # builds, kept for incremental ones) is left out as well.
    check = subprocess.run([str(bin_dir / "python"), "tools/rstlint.py",
                            "-i", "tools", "-i", "venv", "-i", "README.rst",
                            "-i", "build"], cwd=str(src / "Doc"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    with open(log, "a") as f:
        f.write(check.stdout)
    problems = ["rstlint: " + text.strip()
                for text in check.stdout.splitlines()
                if any(path[len("Doc/"):] + ":" in text for path in touched)]
    run_logged(["make", "html", "PYTHON=%s" % (bin_dir / "python"),
                "SPHINXBUILD=%s" % (bin_dir / "sphinx-build"),
                "BLURB=%s" % (bin_dir / "blurb"),
                "SPHINXOPTS=-j%d -w %s" % (jobs, warnings_file)],
               src / "Doc", log, "the docs build (Sphinx %s)" % version)
    found = warnings_file.read_text(errors="replace").splitlines() \
        if warnings_file.exists() else []
    mine = [text for text in found
            if any("/" + path + ":" in text for path in touched)]
    problems += ["sphinx: " + text.strip() for text in mine]
    out("docs built in %s with Sphinx %s: %d warning(s) in the %d .rst file(s) "
        "the series touches (%s), %d elsewhere; rstlint %s"
        % (elapsed(time.monotonic() - started), version, len(mine),
           len(touched), ", ".join(touched) or "none", len(found) - len(mine),
           "clean" if check.returncode == 0 else "reports problems (see %s)"
           % log))
    return problems, version


# -- the verb -----------------------------------------------------------------

def run(ws, line, args):
    series = Series.load(ws.series_dir(line), nonempty=True)
    check_dir = ws.build_dir(line) / "check"
    check_dir.mkdir(parents=True, exist_ok=True)
    with open(check_dir / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError("another `tools check` of %s is running (it "
                             "holds %s): wait for it"
                             % (line.name, check_dir / "lock"))
        return check_line(ws, line, args, series, check_dir)


def check_line(ws, line, args, series, check_dir):
    started = time.monotonic()
    out = functools.partial(print, flush=True)
    source = basestore.load(ws, line, "source")
    failures = static_checks(ws, line, series, source, out)
    installed = basestore.load(ws, line, "installed")
    if args.docs and source is None:
        raise UsageError("--docs needs a source base (Doc/): run `python3 -m "
                         "tools base import PATH` or `python3 -m tools base "
                         "download`%s" % base_option(line))
    failure = None
    if args.fast:
        out("--fast: no prefix was built or tested")
    elif source is not None:
        out("building every prefix of %d patch(es) on %s in %s"
            % (len(series.patches), source.describe(), check_dir))
        failure = walk_full(ws, line, series, check_dir, args.jobs, out)
    elif installed is not None:
        out("no source base: checking every prefix on %s"
            % installed.describe())
        failure = walk_installed(ws, line, series, check_dir, installed, out)
        out("SKIPPED: building CPython and running %s for each prefix: the "
            "installed base has no C sources. Enable it with `python3 -m tools "
            "base download%s` (or `base import PATH` of a source tree)"
            % (" ".join(TESTS), base_option(line)))
    else:
        raise UsageError(basestore.no_base_message(line))
    if failure:
        failures.append(failure)
    if args.docs and (not failures or args.fast):
        # Without --fast, the walk left the whole series there.
        if args.fast:
            apply_series(ws, line, kind="source", src=check_dir / "src")
        python = docs_python(ws, line, args.docs_python)
        problems, version = build_docs(ws, line, check_dir / "src", args.jobs,
                                       python, out)
        for problem in problems:
            out("  FAIL " + problem)
        if problems:
            failures.append("%d docs problem(s) in the files the series "
                            "touches (Sphinx %s)" % (len(problems), version))
    elif args.docs:
        out("SKIPPED: the docs build, after the failure above")
    out("check of %s took %s" % (line.name, elapsed(time.monotonic() - started)))
    if failures:
        raise Failure("; ".join(failures))
    out("check: every prefix passes" if not args.fast else
        "check --fast: the static checks pass")
    return 0
