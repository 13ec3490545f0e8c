"""Compiling a CPython tree: configure and make out of tree, logged, and
the compiler warnings of the files the series touches.  Every build of the
tools (`build`, each prefix of `check`) goes through here."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from .errors import Failure
from .gitutil import git_out

# pip options that pick the wheels of a line's interpreter.
PIP_TARGET = {
    "3.7": ["--python-version", "3.7", "--implementation", "cp", "--abi",
            "cp37m", "--platform", "manylinux2010_x86_64"],
    "3.13": ["--python-version", "3.13", "--implementation", "cp", "--abi",
             "cp313", "--platform", "manylinux2014_x86_64"],
}


def run_logged(args, cwd, log, what):
    """Run a build step with its output appended to LOG; fail with the
    tail of the log."""
    with open(log, "a") as f:
        f.write("\n$ %s\n" % " ".join(map(str, args)))
        f.flush()
        proc = subprocess.run(args, cwd=str(cwd), stdout=f,
                              stderr=subprocess.STDOUT,
                              env=dict(os.environ, ac_cv_prog_HAS_GIT="not-found"))
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        errors = [l for l in tail if "error" in l.lower()] or tail[-3:]
        raise Failure("%s failed (%s); see %s" % (what, errors[-1].strip(), log))


def configure_and_make(src, obj, options, head, jobs, log,
                       out=lambda text: None):
    """Build the work tree SRC (at commit HEAD) out of tree in OBJ, logged
    afresh in LOG: configure runs again only when OPTIONS changed."""
    stamp = obj / "zerocopy-configure.json"
    log.write_text("")
    obj.mkdir(parents=True, exist_ok=True)
    if not (obj / "Makefile").exists() or not stamp.exists() or \
            json.loads(stamp.read_text()) != options:
        out("configuring %s (%s)" % (obj, " ".join(options) or
                                     "default options"))
        run_logged([str(src / "configure")] + options, obj, log, "configure")
        stamp.write_text(json.dumps(options))
    # setup.py only rebuilds an extension whose own sources are newer:
    # after a header changed, it must rebuild them all.
    built_head = obj / "zerocopy-head"
    previous = built_head.read_text().strip() if built_head.exists() else head
    if previous != head:
        proc = subprocess.run(["git", "-C", str(src), "diff", "--name-only",
                               previous, head], stdout=subprocess.PIPE,
                              text=True)
        changed = proc.stdout.split() if proc.returncode == 0 else ["?.h"]
        if any(path.endswith(".h") for path in changed):
            for built in [*obj.glob("build/lib.*"), *obj.glob("build/temp.*")]:
                shutil.rmtree(built)
            # build/lib.* also held the generated _sysconfigdata module;
            # make regenerates it when pybuilddir.txt is missing.
            (obj / "pybuilddir.txt").unlink(missing_ok=True)
    out("compiling in %s with make -j%d (log: %s)" % (obj, jobs, log))
    run_logged(["make", "-j%d" % jobs], obj, log, "make")
    built_head.write_text(head)


def applied_paths(src):
    """Files the applied series changes or adds, relative to the tree."""
    return git_out(src, "diff", "--name-only", "refs/zerocopy/base",
                   "HEAD").split()


def count_warnings(log, paths):
    """Compiler warnings reported for files the series touches."""
    where = ["/" + path + ":" for path in paths if path.endswith((".c", ".h"))]
    return [text.strip() for text in log.read_text(errors="replace").splitlines()
            if "warning:" in text for place in where if place in text]


def install_paths(python):
    """The interpreter's stdlib and site-packages directories."""
    proc = subprocess.run([str(python), "-c", "import json, sysconfig; print("
                           "json.dumps(sysconfig.get_paths()))"],
                          stdout=subprocess.PIPE, text=True)
    paths = json.loads(proc.stdout)
    return Path(paths["stdlib"]), Path(paths["purelib"])
