"""Write the commits of build/<line>/src back into patches/<line>/.

Every commit after the base becomes one `git format-patch` file, listed in
order in the series file; the files a commit adds are also copied to
new-files/<line>/.  Refreshing without edits rewrites nothing.
"""

import shutil
import tempfile
from pathlib import Path

from .model import newfiles
from .model.errors import UsageError
from .model.gitutil import git, git_bytes, git_out
from .model.series import Patch, Series
from .model.tree import patch_hashes, read_record, write_record


def add_arguments(parser):
    pass


def check_inputs_unchanged(ws, line, record):
    """Refuse to overwrite workspace files edited since the last apply."""
    series = Series.load(ws.series_dir(line))
    if record.get("upto") is not None:
        raise UsageError("the last apply stopped at patch %d: apply the whole "
                         "series before refreshing" % record["upto"])
    if patch_hashes(series.patches) != record["patches"]:
        raise UsageError("patches/%s changed since the last apply: run "
                         "`python3 -m tools apply` first" % line.name)
    # A copy deleted since the apply is written again from the commits.
    hashes = newfiles.copy_hashes(ws, line, series)
    for path, digest in record.get("added", {}).items():
        if digest and hashes.get(path) not in (None, digest):
            raise UsageError("%s changed in the workspace since the last "
                             "apply: run `python3 -m tools apply` first"
                             % path)
    # Copies edited or made by hand since would be overwritten or removed.
    newfiles.require_copies_agree(ws, line, series, allow=("missing",))
    return series


def check_base_is_reference(line, record):
    """Refuse to write patches/ from a tree that cannot reproduce them: an
    installed base lacks the hunks of C files, another release has hunks
    applied with less context; refreshing would lose or rewrite them."""
    kind = record.get("base_kind")
    version = record.get("base_version")
    fix = ("import a CPython %s source tree (`python3 -m tools base import "
           "PATH`), then `python3 -m tools apply`" % line.reference)
    if kind != "source" or record.get("skipped"):
        raise UsageError("refusing to refresh from the %s base (CPython %s): "
                         "it lacks files the series changes, whose hunks "
                         "would be lost; %s" % (kind, version, fix))
    if version != line.reference or record.get("fuzzed"):
        raise UsageError("refusing to refresh from CPython %s: patches/%s is "
                         "written against %s and would be rewritten for "
                         "another release; %s"
                         % (version, line.name, line.reference, fix))


def run(ws, line, args):
    src = ws.src_dir(line)
    record = read_record(ws, line)
    if record is None or not (src / ".git").exists():
        raise UsageError("nothing to refresh: run `python3 -m tools apply` "
                         "first, then edit and commit in %s" % src)
    if git_out(src, "status", "--porcelain"):
        raise UsageError("%s has uncommitted edits: commit them (amend or "
                         "fixup the patch they belong to) before refreshing"
                         % src)
    old = check_inputs_unchanged(ws, line, record)
    check_base_is_reference(line, record)
    base = git_out(src, "rev-parse", "refs/zerocopy/base")
    commits = git_out(src, "rev-list", "--reverse", "%s..HEAD" % base).split()
    if git_out(src, "rev-list", "--count", "HEAD..%s" % base) != "0":
        raise UsageError("HEAD of %s does not descend from the base commit"
                         % src)
    series_dir = ws.series_dir(line)
    mails = {}
    copies = {}
    # Not TemporaryDirectory: its cleanup could fail the refresh with a
    # traceback, or hide the UsageError that stopped it.
    staging = Path(tempfile.mkdtemp(prefix="zerocopy-refresh-"))
    try:
        for number, commit in enumerate(commits, 1):
            git(src, "format-patch", "--quiet", "-1", commit, "--zero-commit",
                "--no-signature", "--start-number", str(number), "-o",
                str(staging))
            produced = sorted(staging.glob("%04d-*.patch" % number))
            if not produced or "\ndiff --git " not in \
                    produced[0].read_text(encoding="utf-8"):
                subject = git_out(src, "log", "-1", "--format=%s", commit)
                raise UsageError("commit %s (%s) changes nothing: drop it or "
                                 "fold it into the patch it belongs to"
                                 % (commit[:12], subject))
            mails[produced[0].name] = produced[0].read_bytes()
            for entry in git_out(src, "diff-tree", "--no-commit-id", "-r",
                                 "--diff-filter=A", commit).splitlines():
                meta, path = entry.split("\t", 1)
                if path in copies:
                    raise UsageError("commit %s adds %s again: a file is "
                                     "added once in a series"
                                     % (commit[:12], path))
                copies[path] = (meta.split()[1], git_bytes(
                    src, "cat-file", "blob", "%s:%s" % (commit, path)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Everything is prepared; now write.
    changed = []
    new_series = Series(series_dir, [Patch(name, series_dir / name)
                                     for name in mails])
    for patch, mail in zip(new_series.patches, mails.values()):
        if not patch.path.exists() or patch.path.read_bytes() != mail:
            patch.path.write_bytes(mail)
            changed.append(str(patch.path.relative_to(ws.root)))
    for patch in old.patches:
        if patch.name not in mails and patch.path.exists():
            patch.path.unlink()
            changed.append("removed %s" % patch.path.relative_to(ws.root))
    changed += newfiles.write_copies(ws, line, copies)
    series_file = series_dir / "series"
    before = series_file.read_text()
    new_series.write(line.name)
    if series_file.read_text() != before:
        changed.append(str(series_file.relative_to(ws.root)))
    # The workspace now matches the work tree: record it as applied.
    record["head"] = git_out(src, "rev-parse", "HEAD")
    record["patches"] = patch_hashes(new_series.patches)
    record["added"] = newfiles.copy_hashes(ws, line, new_series)
    write_record(ws, line, record)
    for item in changed:
        print(item if item.startswith("removed ") else "wrote " + item)
    if not changed:
        print("patches/%s is up to date with %s" % (line.name, src))
    return 0
