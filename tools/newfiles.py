"""The files the series adds, and the proofs that its patches carry them.

Every patch of patches/<line>/ is a plain `git format-patch` of its commit,
files it adds included.  So that those files can be read, linted and
reviewed as files, `tools refresh` also writes a copy of each, as the patch
that adds it adds it, to new-files/<line>/<its CPython path>.  The copies
are outputs: `copy_problems` proves they agree with the patches (apply,
refresh, check and patchcheck use it), and an edit made to a copy by hand
is refused, never silently dropped.  `git_am_identity` proves that
`git am` of the patches on the pristine base gives the tree of
`tools apply`.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from . import basestore
from .errors import Failure, ToolError, UsageError
from .gitutil import git, git_out, run as run_command
from .series import Series


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
        for _mode, path in created:
            if path in found:
                raise UsageError("%s adds %s, which %s adds already: a file is "
                                 "added once in a series"
                                 % (patch.name, path, found[path][1]))
        includes = ["--include=" + path for _mode, path in created]
        proc = git(dest, "apply", "--whitespace=nowarn", *includes, "-",
                   input=patch.text(), check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["?"])[0]
            raise Failure("cannot read the files %s adds: %s"
                          % (patch.name, detail.replace("error: ", "")))
        for mode, path in created:
            found[path] = (mode, patch.name)
    return found


@contextlib.contextmanager
def extracted(patches, unreadable=None):
    """A temporary directory holding the files PATCHES add (read from the
    patches, not from the copies), at their CPython paths."""
    work = Path(tempfile.mkdtemp(prefix="zerocopy-added-"))
    try:
        extract(patches, work, unreadable)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def copy_files(ws, line):
    """Paths (relative to new-files/<line>/) of the copies that exist."""
    root = ws.new_files_dir(line)
    if not root.is_dir():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() or path.is_symlink())


def copy_problems(ws, line, series=None):
    """(kind, message) for each way new-files/<line>/ disagrees with the
    patches: "missing", "edited" or "stray".  Empty when they agree."""
    series = series or Series.load(ws.series_dir(line))
    root = ws.new_files_dir(line)
    work = Path(tempfile.mkdtemp(prefix="zerocopy-newfiles-"))
    problems = []
    fix = ("edit it in build/%s/src, commit, and run `python3 -m tools "
           "refresh%s`" % (line.name, base_option(line)))
    try:
        added = extract(series.patches, work)
        for path, (mode, name) in sorted(added.items()):
            copy = root / path
            shown = copy.relative_to(ws.root)
            if not copy.is_file():
                problems.append(("missing", "%s: the workspace has no such "
                                 "file, but %s adds it: restore it with `git "
                                 "checkout -- %s` (`python3 -m tools refresh%s` "
                                 "writes it again too)"
                                 % (shown, name, shown, base_option(line))))
            elif copy.read_bytes() != (work / path).read_bytes():
                problems.append(("edited", "%s differs from the file %s adds: "
                                 "a copy is not the source; %s (or undo the "
                                 "edit with `git checkout -- %s`)"
                                 % (shown, name, fix, shown)))
            elif (mode == "100755") != os.access(copy, os.X_OK):
                problems.append(("edited", "%s: %s adds it with mode %s; %s"
                                 % (shown, name, mode, fix)))
        for path in copy_files(ws, line):
            if path not in added:
                shown = (root / path).relative_to(ws.root)
                problems.append(("stray", "%s is added by no patch of "
                                 "patches/%s: to add a file, add it in "
                                 "build/%s/src, commit, and run `python3 -m "
                                 "tools refresh%s` (or delete the stray copy)"
                                 % (shown, line.name, line.name,
                                    base_option(line))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return problems


def require_copies_agree(ws, line, series=None, allow=()):
    """UsageError naming the first copy that disagrees (kinds in ALLOW pass)."""
    for kind, message in copy_problems(ws, line, series):
        if kind not in allow:
            raise UsageError(message)


def copy_hashes(ws, line, series):
    """{workspace-relative path: sha256} of the copies of what SERIES adds
    (None for a missing copy): what applied.json records as "added"."""
    root = ws.new_files_dir(line)
    hashes = {}
    for patch in series.patches:
        for path in patch.adds():
            copy = root / path
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
    if root.is_dir():
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()),
                                reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
        if not any(root.iterdir()):
            root.rmdir()
    return changed


def base_option(line):
    return "" if line.name == "3.7" else " --base " + line.name


# -- git am of the patches gives the tree of tools apply ------------------------

def git_am_identity(ws, line, work=None, out=print):
    """Prove that `git am` of patches/<line>/*.patch, in series order, on
    the pristine base gives exactly the tree (and the commits' authors,
    dates and messages) that `tools apply` makes; Failure otherwise.

    Needs the source base of the release the series is written against.
    WORK (default build/<line>/check/am) is a scratch directory, removed
    first; build/<line>/src is left alone.
    """
    from .apply import BASE_DATE, apply_series
    base = basestore.load(ws, line, "source")
    if base is None or base.version != line.reference:
        raise UsageError("the git am check needs the CPython %s source base "
                         "(%s): run `python3 -m tools base download%s`"
                         % (line.reference, "none imported" if base is None
                            else "imported: " + base.version, base_option(line)))
    series = Series.load(ws.series_dir(line))
    work = Path(work or ws.build_dir(line) / "check" / "am")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    applied = apply_series(ws, line, kind="source", src=work / "apply")
    src = applied["src"]
    repo = work / "am"
    repo.mkdir()
    # The pristine base, as a user would have it: a tree of files, not the
    # repository of tools apply (whose objects could hide a missing blob).
    tarball = work / "base.tar"
    git(src, "archive", "--format=tar", "-o", str(tarball), "refs/zerocopy/base")
    run_command(["tar", "-xf", str(tarball), "-C", str(repo)])
    tarball.unlink()
    git(repo, "init", "--quiet")
    git(repo, "add", "--all", "--force", ".")
    git(repo, "commit", "--quiet", "--no-verify", "-m", "pristine base",
        date=BASE_DATE)
    proc = git(repo, "am", "--quiet", *[str(p.path) for p in series.patches],
               check=False)
    if proc.returncode != 0:
        stopped = [text for text in (proc.stdout + proc.stderr).splitlines()
                   if text.startswith(("error:", "Patch failed"))]
        git(repo, "am", "--abort", check=False)
        raise Failure("git am of patches/%s on the pristine CPython %s fails: "
                      "%s" % (line.name, base.version,
                              "; ".join(stopped[:2]) or "git am failed"))
    mine = git_out(repo, "rev-parse", "HEAD^{tree}")
    theirs = git_out(src, "rev-parse", "HEAD^{tree}")
    if mine != theirs:
        git(repo, "fetch", "--quiet", str(src), "HEAD")
        paths = git_out(repo, "diff", "--name-only", "FETCH_HEAD", "HEAD")
        raise Failure("git am of patches/%s gives another tree than `tools "
                      "apply`: %s differ(s)" % (line.name,
                                                ", ".join(paths.split())))
    fmt = "--format=%an <%ae> %ad%n%B%x00"
    am_log = git_out(repo, "log", "--reverse", "--date=raw", fmt, "HEAD~%d..HEAD"
                     % len(series.patches)).split("\0")
    apply_log = git_out(src, "log", "--reverse", "--date=raw", fmt,
                        "refs/zerocopy/base..HEAD").split("\0")
    for patch, ours, amed in zip(series.patches, apply_log, am_log):
        if ours.strip() != amed.strip():
            raise Failure("%s: git am and `tools apply` read its author, date or "
                          "message differently" % patch.name)
    out("git am of %d patch(es) of patches/%s on the pristine CPython %s gives "
        "the tree of `tools apply` (%s)" % (len(series.patches), line.name,
                                            base.version, mine[:12]))
    shutil.rmtree(work, ignore_errors=True)
    return mine
