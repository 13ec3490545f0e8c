"""Write the commits of build/<line>/src back into patches/<line>/.

Every commit after the base becomes one `git format-patch` file; files a
commit adds are copied to the workspace at their CPython paths and named in
the series file under their patch.  The output is stable: refreshing
without edits rewrites nothing.
"""

import shutil
import tempfile
from pathlib import Path

from . import basestore
from .apply import read_record
from .errors import UsageError
from .gitutil import git, git_out
from .series import Patch, Series
from .workspace import LINES


def add_arguments(parser):
    pass


def run(ws, line, args):
    changed = refresh(ws, line)
    if changed:
        for item in changed:
            print("wrote " + item)
    else:
        print("patches/%s is up to date with %s" % (line.name, ws.src_dir(line)))
    return 0


def check_inputs_unchanged(ws, line, record):
    """Refuse to overwrite workspace files edited since the last apply."""
    series = Series.load(ws.series_dir(line))
    now = {p.name: basestore.sha256_file(p.path)
           for p in series.patches if p.path.exists()}
    if record.get("upto") is not None:
        raise UsageError("the last apply stopped at patch %d: apply the whole "
                         "series before refreshing" % record["upto"])
    if now != record["patches"]:
        raise UsageError("patches/%s changed since the last apply: run "
                         "`python3 -m tools apply` first" % line.name)
    for path, digest in record["added"].items():
        local = ws.root / path
        if not local.exists() or basestore.sha256_file(local) != digest:
            raise UsageError("%s changed in the workspace since the last apply: "
                             "run `python3 -m tools apply` first" % path)


def check_base_is_reference(line, record):
    """Refuse to write patches/ from a tree that cannot reproduce them.

    On an installed base apply leaves out the hunks of files the base
    lacks (the C sources), and on another release of the line it applies
    hunks with less context: refreshing from either would drop those hunks
    or rewrite their context, and lose work.
    """
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


def other_lines_files(ws, line):
    claimed = set()
    for other in LINES.values():
        if other.name == line.name:
            continue
        directory = ws.series_dir(other)
        if (directory / "series").exists():
            claimed.update(Series.load(directory).added_files())
    return claimed


def refresh(ws, line):
    src = ws.src_dir(line)
    record = read_record(ws, line)
    if record is None or not (src / ".git").exists():
        raise UsageError("nothing to refresh: run `python3 -m tools apply` "
                         "first, then edit and commit in %s" % src)
    if git_out(src, "status", "--porcelain"):
        raise UsageError("%s has uncommitted edits: commit them (amend or "
                         "fixup the patch they belong to) before refreshing"
                         % src)
    check_inputs_unchanged(ws, line, record)
    check_base_is_reference(line, record)
    base = git_out(src, "rev-parse", "refs/zerocopy/base")
    commits = git_out(src, "rev-list", "--reverse", "%s..HEAD" % base).split()
    if git_out(src, "rev-list", "--count", "HEAD..%s" % base) != "0":
        raise UsageError("HEAD of %s does not descend from the base commit"
                         % src)
    series_dir = ws.series_dir(line)
    old = Series.load(series_dir)
    claimed = other_lines_files(ws, line)
    changed = []
    new_patches = []
    staging = Path(tempfile.mkdtemp(prefix="zerocopy-refresh-"))
    try:
        for number, commit in enumerate(commits, 1):
            added = git_out(src, "diff-tree", "--no-commit-id", "-r",
                            "--diff-filter=A", "--name-only", commit).split()
            excludes = [":(exclude)%s" % path for path in added]
            git(src, "format-patch", "--quiet", "-1", commit, "--zero-commit",
                "--no-signature", "--start-number", str(number), "-o",
                str(staging), "--", ".", *excludes)
            produced = sorted(staging.glob("%04d-*.patch" % number))
            if not produced:
                subject = git_out(src, "log", "-1", "--format=%s", commit)
                raise UsageError("commit %s (%s) only adds files: fold it into "
                                 "the patch it belongs to" % (commit[:12], subject))
            patch = Patch(produced[0].name, added, series_dir / produced[0].name)
            new_patches.append(patch)
            for path in added:
                if path in claimed:
                    theirs = ws.root / path
                    mine = git(src, "show", "%s:%s" % (commit, path)).stdout
                    if theirs.exists() and theirs.read_text() != mine:
                        raise UsageError("%s is added by another line's series "
                                         "with different content" % path)
        # Everything is prepared; now write.
        for patch in new_patches:
            content = (staging / patch.name).read_bytes()
            if not patch.path.exists() or patch.path.read_bytes() != content:
                patch.path.write_bytes(content)
                changed.append(str(patch.path.relative_to(ws.root)))
        keep = {p.name for p in new_patches}
        for patch in old.patches:
            if patch.name not in keep and patch.path.exists():
                patch.path.unlink()
                changed.append("removed " + str(patch.path.relative_to(ws.root)))
        for patch, commit in zip(new_patches, commits):
            for path in patch.adds:
                content = git(src, "cat-file", "blob", "%s:%s" % (commit, path),
                              ).stdout
                target = ws.root / path
                if not target.exists() or target.read_text() != content:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(content)
                    changed.append(path)
        still_added = {path for p in new_patches for path in p.adds} | claimed
        for path in old.added_files():
            if path not in still_added and (ws.root / path).exists():
                (ws.root / path).unlink()
                changed.append("removed " + path)
        new_series = Series(series_dir, new_patches)
        before = (series_dir / "series").read_text()
        new_series.write(line.name)
        if (series_dir / "series").read_text() != before:
            changed.append(str((series_dir / "series").relative_to(ws.root)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # The workspace now matches the work tree: record it as applied.
    record["head"] = git_out(src, "rev-parse", "HEAD")
    record["patches"] = {p.name: basestore.sha256_file(p.path)
                         for p in new_patches}
    record["added"] = {path: basestore.sha256_file(ws.root / path)
                       for p in new_patches for path in p.adds}
    import json
    (ws.build_dir(line) / "applied.json").write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n")
    return changed
