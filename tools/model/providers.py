"""Ways to obtain a base: a source directory, a release tarball, a git
directory at a revision, a download from python.org, an installed
interpreter, or Debian's source package.

Every provider stages the tree in a temporary directory inside the cache
and only then replaces the cached base, so a failed import never loses the
base that was there before.
"""

import contextlib
import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from . import basestore
from .errors import Failure, UsageError
from .gitutil import require_program

# Build products that must not travel with a source tree: CPython refuses
# to build out of tree from a source directory that was configured in place.
BUILD_PRODUCTS = re.compile(
    r"(^|/)(__pycache__|\.git)(/|$)|\.(o|so|a|pyc)$|"
    r"^(config\.status|config\.log|Makefile|Makefile\.pre|pyconfig\.h|python|"
    r"pybuilddir\.txt|Modules/Setup|Modules/Setup\.local|Modules/Setup\.config"
    r"|Modules/config\.c|build/.*)$")


@contextlib.contextmanager
def staging(ws):
    """A staging directory in the cache, removed afterwards."""
    ws.cache.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="staging-", dir=str(ws.cache)))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def mark_scripts_executable(tree):
    """Give every file starting with '#!' the executable bits: snapshots
    can lose file modes, and configure and its scripts must run."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                if f.read(2) != b"#!":
                    continue
            mode = os.stat(path).st_mode
            if mode & 0o111 != 0o111:
                os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                count += 1
    return count


def _finish_source(ws, line, staged, origin, missing=()):
    tree = staged / "tree"
    version = basestore.tree_version(tree)
    basestore.check_line_version(line, version, origin)
    if not (tree / "configure").exists() or not (tree / "Modules").is_dir():
        raise UsageError("%s has Include/patchlevel.h but no configure or "
                         "Modules/: not a complete source tree" % origin)
    mark_scripts_executable(tree)
    return basestore.install(ws, line, "source", tree, {
        "version": version, "origin": origin, "missing": sorted(missing)})


# -- source directory ---------------------------------------------------------

def from_directory(ws, line, directory):
    directory = Path(directory).resolve()
    if not (directory / "Include" / "patchlevel.h").exists():
        raise UsageError("%s is not a CPython source tree (no "
                         "Include/patchlevel.h)" % directory)
    tracked = None
    if (directory / ".git").exists() and shutil.which("git"):
        proc = subprocess.run(["git", "-C", str(directory), "ls-files", "-z"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if proc.returncode == 0 and proc.stdout:
            tracked = [p for p in proc.stdout.decode().split("\0") if p]
    if tracked is None:
        tracked = []
        for dirpath, dirnames, filenames in os.walk(directory):
            rel_dir = os.path.relpath(dirpath, directory)
            dirnames[:] = [d for d in dirnames if not BUILD_PRODUCTS.search(
                os.path.normpath(os.path.join(rel_dir, d)))]
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if not BUILD_PRODUCTS.search(rel):
                    tracked.append(rel)
    with staging(ws) as staged:
        tree = staged / "tree"
        for rel in tracked:
            src = directory / rel
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif src.is_file():
                shutil.copy2(src, dst)
        return _finish_source(ws, line, staged, "directory %s" % directory)


# -- release tarball ----------------------------------------------------------

def _safe_members(archive, origin):
    members = archive.getmembers()
    tops = {m.name.split("/", 1)[0] for m in members if m.name.strip("/")}
    strip = tops.pop() + "/" if len(tops) == 1 else ""
    for member in members:
        name = member.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise UsageError("%s contains an unsafe path %r; refusing it"
                             % (origin, name))
        if member.islnk() or member.issym():
            target = member.linkname
            if target.startswith("/") or ".." in Path(target).parts:
                if member.issym():
                    # CPython tarballs have none; skip rather than escape.
                    continue
        if strip and name.startswith(strip):
            member.name = name[len(strip):]
        elif strip and name == strip.rstrip("/"):
            continue
        if member.islnk() and strip and member.linkname.startswith(strip):
            member.linkname = member.linkname[len(strip):]
        if member.name:
            yield member


def from_tarball(ws, line, tarball, origin=None):
    tarball = Path(tarball).resolve()
    origin = origin or "tarball %s" % tarball

    if not tarball.is_file():
        raise UsageError("no such file: %s" % tarball)
    with staging(ws) as staged:
        tree = staged / "tree"
        tree.mkdir()
        try:
            with tarfile.open(tarball) as archive:
                members = list(_safe_members(archive, origin))
                archive.extractall(tree, members=members)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UsageError("cannot read %s: %s (a corrupt or truncated "
                             "download?)" % (tarball, exc)) from None
        return _finish_source(ws, line, staged, origin)


# -- git directory at a revision ---------------------------------------------

def from_git(ws, line, repo, rev):
    require_program("git", "to import from a git directory")
    repo = Path(repo).resolve()
    proc = subprocess.run(["git", "--git-dir", str(_git_dir(repo)), "rev-parse",
                           "--verify", "--quiet", rev + "^{commit}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise UsageError("%s has no commit %r" % (repo, rev))
    commit = proc.stdout.strip()
    git_dir = str(_git_dir(repo))
    with staging(ws) as staged:
        tree = staged / "tree"
        listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r",
                                  "-z", commit], stdout=subprocess.PIPE,
                                 check=True).stdout.decode()
        entries = []
        for item in listing.split("\0"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob":
                entries.append((mode, sha, path))
        missing = []
        # One cat-file process streams every blob; absent objects (partial
        # snapshots) come back as "<sha> missing" and are skipped.
        batch = subprocess.Popen(["git", "--git-dir", git_dir, "cat-file",
                                  "--batch"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        try:
            for mode, sha, path in entries:
                batch.stdin.write(sha.encode() + b"\n")
                batch.stdin.flush()
                header = batch.stdout.readline().decode().split()
                if len(header) == 2 and header[1] == "missing":
                    missing.append(path)
                    continue
                size = int(header[2])
                data = batch.stdout.read(size)
                batch.stdout.read(1)
                dst = tree / path
                dst.parent.mkdir(parents=True, exist_ok=True)
                if mode == "120000":
                    os.symlink(data.decode(), dst)
                    continue
                dst.write_bytes(data)
                if mode == "100755":
                    dst.chmod(0o755)
        finally:
            batch.stdin.close()
            batch.wait()
        return _finish_source(ws, line, staged, "git %s at %s" % (repo, commit[:12]),
                              missing)


def _git_dir(repo):
    return repo / ".git" if (repo / ".git").exists() else repo


def looks_like_git(path):
    path = Path(path)
    return (path / ".git").exists() or ((path / "HEAD").is_file()
                                        and (path / "objects").is_dir())


# -- download from python.org -------------------------------------------------

def fetch(ws, download, label):
    """Download DOWNLOAD into the cache and check its pinned sha256."""
    target = ws.downloads_dir() / download.filename
    if target.exists() and basestore.sha256_file(target) == download.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(download.url, timeout=30) as response, \
                open(partial, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise Failure("cannot download %s (%s): without internet, import a "
                      "%s source tree or tarball you have with `python3 -m "
                      "tools base import PATH`" % (download.url, reason, label))
    if digest.hexdigest() != download.sha256:
        partial.unlink(missing_ok=True)
        raise Failure("%s does not match its pinned sha256 (got %s, expected "
                      "%s); nothing was imported" % (download.url,
                                                     digest.hexdigest(),
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


# -- an installed interpreter -------------------------------------------------

def find_installed(line):
    """Interpreters of LINE that pyenv or PATH know about, best first."""
    candidates = []
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except FileNotFoundError:
        root = ""
    if root:
        versions = glob.glob(os.path.join(root, "versions", line.name + ".*"))

        def key(path):
            tail = os.path.basename(path)[len(line.name) + 1:]
            return int(tail) if tail.isdigit() else -1
        for prefix in sorted(versions, key=key, reverse=True):
            if key(prefix) >= 0:
                candidates.append(os.path.join(prefix, "bin", "python" + line.name))
    on_path = shutil.which("python" + line.name)
    if on_path:
        candidates.append(on_path)
    return [c for c in candidates if os.access(c, os.X_OK)]


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


def introspect(python):
    try:
        proc = subprocess.run([str(python), "-I", "-c", INTROSPECT],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError("cannot run %s: %s" % (python, exc)) from None
    if proc.returncode != 0:
        raise UsageError("%s does not run: %s" % (
            python, (proc.stderr.strip().splitlines() or ["?"])[-1]))
    import json
    return json.loads(proc.stdout)


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
    facts = introspect(python)
    if not facts["version"].startswith(line.name + "."):
        raise UsageError("%s is CPython %s, not %s" % (python, facts["version"],
                                                      line.name))
    if not Path(facts["include"], "Python.h").exists():
        raise UsageError("%s has no C headers (%s/Python.h): install its "
                         "development files" % (python, facts["include"]))
    skip = shutil.ignore_patterns("site-packages", "lib-dynload", "__pycache__",
                                  "config-*")
    with staging(ws) as staged:
        tree = staged / "tree"
        tree.mkdir()
        shutil.copytree(facts["stdlib"], tree / "Lib", symlinks=True,
                        ignore=skip)
        return basestore.install(ws, line, "installed", tree, dict(
            facts, origin="installed interpreter %s" % facts["executable"],
            missing=[]))
