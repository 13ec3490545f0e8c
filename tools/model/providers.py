"""Ways to obtain a base (Debian's source package: debian.py).  Every
provider stages the tree in a temporary directory inside the cache and only
then replaces the cached base, so a failed import never loses the base that
was there before."""

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from . import basestore
from .errors import Failure, UsageError
from .gitutil import require_program, run

# Build products that must not travel with a source tree: CPython refuses
# to build out of tree from a source directory that was configured in place.
BUILD_PRODUCTS = re.compile(
    r"(^|/)(__pycache__|\.git)(/|$)|\.(o|so|a|pyc)$|"
    r"^(config\.status|config\.log|Makefile|Makefile\.pre|pyconfig\.h|python|"
    r"pybuilddir\.txt|Modules/Setup|Modules/Setup\.local|Modules/Setup\.config"
    r"|Modules/config\.c|build/.*)$")


@contextlib.contextmanager
def staging(ws):
    """A path for the tree in a staging directory, removed afterwards."""
    ws.cache.mkdir(parents=True, exist_ok=True)
    # Not TemporaryDirectory: a failed cleanup must not fail an import
    # that is already in the cache.
    staged = Path(tempfile.mkdtemp(prefix="staging-", dir=str(ws.cache)))
    try:
        yield staged / "tree"
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def mark_scripts_executable(tree):
    """Give every file starting with '#!' the executable bits: snapshots
    can lose file modes, and configure and its scripts must run."""
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                continue
            with open(path, "rb") as f:
                if f.read(2) == b"#!":
                    path.chmod(path.stat().st_mode | 0o111)


def _finish_source(ws, line, tree, origin, missing=()):
    header = tree / "Include" / "patchlevel.h"
    version = basestore.patchlevel_version(
        header.read_text()) if header.exists() else None
    if version is None:
        raise UsageError("%s is not a CPython source tree "
                         "(no Include/patchlevel.h)" % origin)
    if not (version == line.name or version.startswith(line.name + ".")):
        raise UsageError("%s is CPython %s, not %s: pick the matching "
                         "series with --base" % (origin, version, line.name))
    if not (tree / "configure").exists() or not (tree / "Modules").is_dir():
        raise UsageError("%s has Include/patchlevel.h but no configure or "
                         "Modules/: not a complete source tree" % origin)
    mark_scripts_executable(tree)
    return basestore.install(ws, line, "source", tree, {
        "version": version, "origin": origin, "missing": sorted(missing)})


def from_directory(ws, line, directory):
    directory = Path(directory).resolve()
    if not (directory / "Include" / "patchlevel.h").exists():
        raise UsageError("%s is not a CPython source tree (no "
                         "Include/patchlevel.h)" % directory)
    tracked = []
    if (directory / ".git").exists() and shutil.which("git"):
        # Nothing on stdout when it fails: the walk below lists the files.
        tracked = run(["git", "-C", str(directory), "ls-files", "-z"],
                      check=False).stdout.split("\0")[:-1]
    if not tracked:
        for dirpath, dirnames, filenames in os.walk(directory):
            rel = Path(dirpath).relative_to(directory)
            dirnames[:] = [d for d in dirnames
                           if not BUILD_PRODUCTS.search(str(rel / d))]
            tracked += [rel / name for name in filenames
                        if not BUILD_PRODUCTS.search(str(rel / name))]
    with staging(ws) as tree:
        for rel in tracked:
            src, dst = directory / rel, tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink() or src.is_file():
                shutil.copy2(src, dst, follow_symlinks=False)
        return _finish_source(ws, line, tree, "directory %s" % directory)


def _escapes(name):
    return name.startswith("/") or ".." in Path(name).parts


def from_tarball(ws, line, tarball, origin=None):
    tarball = Path(tarball).resolve()
    origin = origin or "tarball %s" % tarball
    if not tarball.is_file():
        raise UsageError("no such file: %s" % tarball)
    with staging(ws) as tree:
        tree.mkdir()
        try:
            with tarfile.open(tarball) as archive:
                members = archive.getmembers()
                for member in members:
                    if _escapes(member.name):
                        raise UsageError("%s contains an unsafe path %r; "
                                         "refusing it" % (origin, member.name))
                # CPython tarballs have no symlink out of the tree: skip
                # rather than escape.
                archive.extractall(tree, members=[
                    m for m in members
                    if not (m.issym() and _escapes(m.linkname))])
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UsageError("cannot read %s: %s (a corrupt or truncated "
                             "download?)" % (tarball, exc)) from None
        # The tree is the one top directory (Python-X.Y.Z/) if there is one.
        top = list(tree.iterdir())
        if len(top) == 1 and top[0].is_dir():
            tree = top[0]
        return _finish_source(ws, line, tree, origin)


def from_git(ws, line, repo, rev):
    require_program("git", "to import from a git directory")
    repo = Path(repo).resolve()
    git = ["git", "--git-dir",
           str(repo / ".git" if (repo / ".git").exists() else repo)]
    proc = run(git + ["rev-parse", "--verify", "--quiet", rev + "^{commit}"],
               check=False)
    if proc.returncode != 0:
        raise UsageError("%s has no commit %r" % (repo, rev))
    commit = proc.stdout.strip()
    listing = run(git + ["ls-tree", "-r", "-z", commit]).stdout
    missing = []
    with staging(ws) as tree:
        # One cat-file process streams every blob; absent objects (partial
        # snapshots) come back as "<sha> missing" and are skipped.
        with subprocess.Popen(git + ["cat-file", "--batch"],
                              stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) as batch:
            # ls-tree -z ends each entry with a NUL, the last one too.
            for item in listing.split("\0")[:-1]:
                meta, path = item.split("\t", 1)
                mode, kind, sha = meta.split()
                if kind != "blob":
                    continue
                batch.stdin.write(sha.encode() + b"\n")
                batch.stdin.flush()
                header = batch.stdout.readline().split()
                if header[1:] == [b"missing"]:
                    missing.append(path)
                    continue
                # The blob, and the newline cat-file puts after it.
                data = batch.stdout.read(int(header[2]) + 1)[:-1]
                dst = tree / path
                dst.parent.mkdir(parents=True, exist_ok=True)
                if mode == "120000":
                    os.symlink(data.decode(), dst)
                    continue
                dst.write_bytes(data)
                if mode == "100755":
                    dst.chmod(0o755)
        return _finish_source(ws, line, tree, "git %s at %s" % (
            repo, commit[:12]), missing)


def looks_like_git(path):
    path = Path(path)
    return (path / ".git").exists() or ((path / "HEAD").is_file()
                                        and (path / "objects").is_dir())


def fetch(ws, download, label):
    """Download DOWNLOAD into the cache and check its pinned sha256."""
    target = ws.downloads_dir() / download.filename
    if target.exists() and basestore.sha256_file(target) == download.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(download.url, timeout=30) as response, \
                open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:  # URLError is an OSError
        partial.unlink(missing_ok=True)
        raise Failure("cannot download %s (%s): without internet, import a "
                      "%s source tree or tarball you have with `python3 -m "
                      "tools base import PATH`"
                      % (download.url, getattr(exc, "reason", exc), label))
    digest = basestore.sha256_file(partial)
    if digest != download.sha256:
        partial.unlink()
        raise Failure("%s does not match its pinned sha256 (got %s, expected "
                      "%s); nothing was imported" % (download.url, digest,
                                                     download.sha256))
    partial.replace(target)
    return target


def from_download(ws, line, version=None):
    version = version or line.reference
    download = line.downloads.get(version)
    if download is None:
        raise UsageError("no pinned download for CPython %s; known: %s"
                         % (version, ", ".join(sorted(line.downloads))))
    path = fetch(ws, download, "CPython " + line.name)
    return from_tarball(ws, line, path, origin="%s (sha256 %s)" % (
        download.url, download.sha256[:16]))


def find_installed(line):
    """Interpreters of LINE that pyenv or PATH know about, best first."""
    pyenv = shutil.which("pyenv")
    root = run([pyenv, "root"], check=False).stdout.strip() if pyenv else ""
    found = []
    if root:
        pattern = os.path.join(root, "versions", line.name + ".*")
        for prefix in glob.glob(pattern):
            tail = os.path.basename(prefix)[len(line.name) + 1:]
            if tail.isdigit():
                found.append((int(tail), os.path.join(prefix, "bin",
                                                      "python" + line.name)))
    candidates = [path for _, path in sorted(found, reverse=True)]
    candidates.append(shutil.which("python" + line.name))
    return [c for c in candidates if c and os.access(c, os.X_OK)]


INTROSPECT = """\
import json, sys, sysconfig
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefix": sys.prefix,
    "stdlib": sysconfig.get_paths()["stdlib"],
    "platstdlib": sysconfig.get_paths()["platstdlib"],
    "include": sysconfig.get_paths()["include"],
    "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
    "executable": sys.executable,
}))
"""


def from_installed(ws, line, python=None):
    """Record an installed interpreter and copy its pure-Python standard
    library as tree/Lib, so that the Lib/ part of the series can be verified
    and applied to it."""
    if python is None:
        found = find_installed(line)
        if not found:
            raise UsageError(
                "no installed CPython %s found (looked in pyenv and PATH): "
                "pass its path, `python3 -m tools base installed "
                "/path/to/python%s`" % (line.name, line.name))
        python = found[0]
    python = Path(python)
    if python.is_dir():
        python = python / "bin" / ("python" + line.name)
    if not python.exists():
        raise UsageError("no such interpreter: %s" % python)
    try:
        proc = subprocess.run([str(python), "-I", "-c", INTROSPECT],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError("cannot run %s: %s" % (python, exc)) from None
    if proc.returncode != 0:
        raise UsageError("%s does not run: %s" % (
            python, (proc.stderr.strip().splitlines() or ["?"])[-1]))
    facts = json.loads(proc.stdout)
    if not facts["version"].startswith(line.name + "."):
        raise UsageError("%s is CPython %s, not %s"
                         % (python, facts["version"], line.name))
    if not Path(facts["include"], "Python.h").exists():
        raise UsageError("%s has no C headers (%s/Python.h): install its "
                         "development files" % (python, facts["include"]))
    with staging(ws) as tree:
        shutil.copytree(facts["stdlib"], tree / "Lib",
                        symlinks=True, ignore=shutil.ignore_patterns(
                            "site-packages", "lib-dynload", "__pycache__",
                            "config-*"))
        return basestore.install(ws, line, "installed", tree, dict(
            facts, origin="installed interpreter %s" % facts["executable"],
            missing=[]))
