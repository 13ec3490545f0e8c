"""The files the series adds, and the proofs that its patches carry them.

Every patch carries the files it adds; `tools refresh` also writes a copy
of each to new-files/<line>/<its CPython path>, to be read, linted and
reviewed as a file.  The copies are outputs: `copy_problems` proves they
agree with the patches, and an edit made to a copy by hand is refused,
never silently dropped.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from . import basestore
from .errors import Failure, ToolError, UsageError
from .gitutil import git
from .series import Series
from .workspace import base_option


def extract(patches, dest, unreadable=None):
    """Write the files PATCHES add under DEST, each as the patch that adds
    it adds it; {path: (mode, patch name)}.  With UNREADABLE (a list), a
    patch that cannot be read is appended to it and left out, rather than
    raising."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # A repository of its own, so that git apply works on DEST and not on
    # a repository DEST happens to be inside.
    git(dest, "init", "--quiet")
    found = {}
    for patch in patches:
        try:
            created = patch.created_files()
        except ToolError:
            if unreadable is None:
                raise
            unreadable.append(patch)
            continue
        if not created:
            continue
        for mode, path in created:
            if path in found:
                raise UsageError("%s adds %s, which %s adds already: a file is "
                                 "added once in a series"
                                 % (patch.name, path, found[path][1]))
            found[path] = (mode, patch.name)
        includes = ["--include=" + path for _mode, path in created]
        proc = git(dest, "apply", "--whitespace=nowarn", *includes, "-",
                   input=patch.text(), check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["?"])[0]
            raise Failure("cannot read the files %s adds: %s"
                          % (patch.name, detail.replace("error: ", "")))
    return found


@contextlib.contextmanager
def extracted(patches, unreadable=None):
    """A temporary directory holding the files PATCHES add (read from the
    patches, not from the copies), at their CPython paths."""
    with tempfile.TemporaryDirectory(prefix="zerocopy-added-") as work:
        extract(patches, work, unreadable)
        yield Path(work)


def copy_files(ws, line):
    """Paths (relative to new-files/<line>/) of the copies that exist."""
    root = ws.new_files_dir(line)
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() or path.is_symlink())


def copy_problems(ws, line, series=None):
    """(kind, message) for each way new-files/<line>/ disagrees with the
    patches: "missing", "edited" or "stray".  Empty when they agree."""
    series = series or Series.load(ws.series_dir(line))
    root = ws.new_files_dir(line)
    option = base_option(line)
    refresh = "commit, and run `python3 -m tools refresh%s`" % option
    fix = "edit it in build/%s/src, %s" % (line.name, refresh)
    problems = []
    with tempfile.TemporaryDirectory(prefix="zerocopy-newfiles-") as work:
        added = extract(series.patches, work)
        for path, (mode, name) in sorted(added.items()):
            copy = root / path
            shown = copy.relative_to(ws.root)
            if not copy.is_file():
                problems.append(("missing", "%s: the workspace has no such "
                                 "file, but %s adds it: restore it with `git "
                                 "checkout -- %s` (`python3 -m tools refresh%s` "
                                 "writes it again too)"
                                 % (shown, name, shown, option)))
            elif copy.read_bytes() != Path(work, path).read_bytes():
                problems.append(("edited", "%s differs from the file %s adds: "
                                 "a copy is not the source; %s (or undo the "
                                 "edit with `git checkout -- %s`)"
                                 % (shown, name, fix, shown)))
            elif (mode == "100755") != os.access(copy, os.X_OK):
                problems.append(("edited", "%s: %s adds it with mode %s; %s"
                                 % (shown, name, mode, fix)))
    for path in copy_files(ws, line):
        if path not in added:
            problems.append(("stray", "%s is added by no patch of patches/%s: "
                             "to add a file, add it in build/%s/src, %s (or "
                             "delete the stray copy)"
                             % ((root / path).relative_to(ws.root), line.name,
                                line.name, refresh)))
    return problems


def require_copies_agree(ws, line, series=None, allow=()):
    """UsageError naming the first copy that disagrees (kinds in ALLOW pass)."""
    for kind, message in copy_problems(ws, line, series):
        if kind not in allow:
            raise UsageError(message)


def copy_hashes(ws, line, series):
    """{workspace-relative path: sha256} of the copies of what SERIES adds
    (None for a missing copy): what applied.json records as "added"."""
    hashes = {}
    for patch in series.patches:
        for path in patch.adds():
            copy = ws.new_files_dir(line) / path
            hashes[str(copy.relative_to(ws.root))] = \
                basestore.sha256_file(copy) if copy.is_file() else None
    return hashes


def write_copies(ws, line, files):
    """Make new-files/<line>/ hold exactly FILES ({path: (mode, bytes)});
    the workspace-relative paths written or removed."""
    root = ws.new_files_dir(line)
    changed = []
    for path, (mode, content) in sorted(files.items()):
        target = root / path
        if not target.is_file() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            changed.append(str(target.relative_to(ws.root)))
        executable = mode == "100755"
        if executable != os.access(target, os.X_OK):
            target.chmod(0o755 if executable else 0o644)
            if str(target.relative_to(ws.root)) not in changed:
                changed.append(str(target.relative_to(ws.root)))
    for path in copy_files(ws, line):
        if path not in files:
            (root / path).unlink()
            changed.append("removed " + str((root / path).relative_to(ws.root)))
    # Emptied folders go, ROOT last (deeper paths sort after their parents).
    for directory in sorted(root.glob("**/"), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    return changed
