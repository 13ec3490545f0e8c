"""Apply the series to the base in a git work tree under build/<line>/src.

The work tree gets one commit for the base and one commit per patch, with
the patch's author, date and message, so that `git log`, `git show` and
`git rebase -i` work on the series as usual.  Edit there, commit (amend or
fixup the patch's commit), then run `python3 -m tools refresh` to write the
series back to patches/.

Re-applying only rewrites the files whose content changes, so an
incremental build after a one-line patch edit recompiles one file.
"""

import json
import re
from pathlib import Path

from . import basestore, newfiles
from .base import no_base_message
from .errors import Failure, UsageError
from .gitutil import git, git_out, require_program
from .series import Series, hunks

BASE_DATE = "2000-01-01T00:00:00+00:00"
BRANCH = "series"
# Build products that appear in the source tree (bytecode of the stdlib,
# in-tree helpers) are not edits.
EXCLUDES = "__pycache__/\n*.pyc\n"


def add_arguments(parser):
    parser.add_argument("--kind", choices=basestore.KINDS,
                        help="apply to this base (default: the source base "
                             "when imported, else the installed one)")
    parser.add_argument("--upto", type=int, metavar="N",
                        help="apply only the first N patches")
    parser.add_argument("--force", action="store_true",
                        help="discard edits and commits in build/<line>/src "
                             "that were not refreshed")


def run(ws, line, args):
    result = apply_series(ws, line, kind=args.kind, upto=args.upto,
                          force=args.force)
    print_result(result)
    return 0


def print_result(result, out=print):
    out("applied %d patch(es) to %s in %s"
        % (len(result["patches"]), result["base_description"], result["src"]))
    for name, skipped in result["skipped"].items():
        out("  %s: skipped %s (not part of this base)" % (name, ", ".join(skipped)))
    for name, context in result.get("fuzzed", {}).items():
        out("  %s: applied with %d line(s) of context: this base differs "
            "from %s around some of its hunks" % (name, context,
                                                  result["reference"]))


def read_record(ws, line):
    path = ws.build_dir(line) / "applied.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            return None
    return None


def check_work_tree(ws, line, src, force):
    """Refuse to throw away edits that were not refreshed into patches/."""
    if not (src / ".git").exists():
        return
    if force:
        git(src, "reset", "--quiet", "--hard")
        git(src, "clean", "--quiet", "-fdx")
        return
    dirty = git_out(src, "status", "--porcelain")
    if dirty:
        raise UsageError(
            "%s has uncommitted edits (%s): commit them and run `python3 -m "
            "tools refresh`, or discard them with --force"
            % (src, dirty.splitlines()[0].strip()))
    record = read_record(ws, line)
    head = git(src, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    if record and head.returncode == 0 and head.stdout.strip() != record["head"]:
        raise UsageError(
            "%s has commits that are not in patches/: run `python3 -m tools "
            "refresh` to keep them, or apply with --force to drop them" % src)


def base_commit(src, base):
    """Commit the base tree once; reuse it while the base is unchanged."""
    identity = "%s %s %s" % (base.kind, base.version, base.record.get("imported"))
    known = git(src, "config", "--get", "zerocopy.base", check=False).stdout.strip()
    existing = git(src, "rev-parse", "--verify", "--quiet", "refs/zerocopy/base",
                   check=False).stdout.strip()
    if existing and known == identity:
        return existing
    index = src / ".git" / "zerocopy-base-index"
    env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(base.tree)}
    git(src, "--work-tree", str(base.tree), "add", "--all", "--force", ".",
        env=env)
    tree = git_out(src, "write-tree", env=env)
    index.unlink()
    commit = git_out(src, "commit-tree", tree, "-m",
                     "CPython %s (%s base)" % (base.version, base.kind),
                     date=BASE_DATE)
    git(src, "update-ref", "refs/zerocopy/base", commit)
    git(src, "config", "zerocopy.base", identity)
    return commit


def explain_apply_error(patch, text, stderr, base_label):
    """Turn git apply's complaint into one line naming patch and hunk."""
    failed = re.search(r"patch failed: (\S+):(\d+)", stderr)
    if failed:
        path, start = failed.group(1), int(failed.group(2))
        for hunk_path, number, old_start in hunks(text):
            if hunk_path == path and old_start == start:
                return ("%s does not apply to %s: hunk #%d of %s (at line %d) "
                        "does not match" % (patch.name, base_label, number, path,
                                            start))
        return ("%s does not apply to %s: %s at line %d does not match"
                % (patch.name, base_label, path, start))
    corrupt = re.search(r"corrupt patch at line (\d+)", stderr)
    if corrupt:
        return "%s is corrupt at line %s" % (patch.name, corrupt.group(1))
    missing = re.search(r"(\S+): does not exist in index", stderr)
    if missing:
        return ("%s does not apply to %s: it changes %s, which the base does "
                "not have" % (patch.name, base_label, missing.group(1)))
    lines = [l for l in stderr.strip().splitlines() if l.startswith("error")]
    detail = lines[0] if lines else stderr.strip() or "git apply failed"
    return "%s does not apply to %s: %s" % (patch.name, base_label,
                                            detail.replace("error: ", ""))


def apply_series(ws, line, kind=None, upto=None, force=False, src=None):
    """Apply the first UPTO patches (all by default) in build/<line>/src.

    SRC names another work tree instead, one the tools own for their own
    checks (build/<line>/check/src): it is reset without asking, and the
    record of build/<line>/src (applied.json) is left alone.
    """
    require_program("git", "to apply the series")
    base = basestore.select(ws, line, kind)
    if base is None:
        raise UsageError(no_base_message(line))
    series = Series.load(ws.series_dir(line))
    patches = series.patches[:upto] if upto is not None else series.patches
    scratch = src is not None
    if not scratch:
        # The copies in new-files/<line>/ are written from the commits: one
        # edited by hand would be lost, so say so rather than ignore it.
        newfiles.require_copies_agree(ws, line, series)
    if scratch:
        src = Path(src)
        if (src / ".git").exists():
            git(src, "reset", "--quiet", "--hard")
    else:
        src = ws.src_dir(line)
        check_work_tree(ws, line, src, force)
    fresh = not (src / ".git").exists()
    if fresh:
        src.mkdir(parents=True, exist_ok=True)
        git(src, "init", "--quiet")
        git(src, "config", "core.abbrev", "12")
        (src / ".git" / "info").mkdir(exist_ok=True)
        (src / ".git" / "info" / "exclude").write_text(EXCLUDES)
    base_label = "CPython %s (%s base)" % (base.version, base.kind)
    parent = base_commit(src, base)
    base_files = None
    if base.kind == "installed":
        base_files = set(git_out(src, "ls-tree", "-r", "--name-only",
                                 parent).splitlines())
    index = src / ".git" / "zerocopy-apply-index"
    env = {"GIT_INDEX_FILE": str(index)}
    skipped = {}
    fuzzed = {}
    try:
        git(src, "read-tree", parent, env=env)
        for patch in patches:
            text = patch.text()
            header = patch.header()
            excludes = []
            if base_files is not None:
                # An installed base lacks the C sources: leave out the
                # hunks of files it lacks, but never the files the series
                # adds (nor later changes to them).
                base_files.update(patch.adds())
                excludes = [p for p in patch.touched_files() if p not in base_files]
                if excludes:
                    skipped[patch.name] = excludes
            applicable = [p for p in patch.touched_files() if p not in excludes]
            if applicable:
                args = ["apply", "--cached", "--whitespace=nowarn"]
                args += ["--exclude=" + p for p in excludes]
                proc = git(src, *args, "-", env=env, input=text, check=False)
                # Another release of the line than the one the series was
                # written against may have moved the context of a hunk;
                # accept less context there, like patch's fuzz, and say so.
                context = 3
                while proc.returncode != 0 and \
                        base.version != line.reference and context > 1:
                    context -= 1
                    proc = git(src, *args, "-C%d" % context, "-", env=env,
                               input=text, check=False)
                    if proc.returncode == 0:
                        fuzzed[patch.name] = context
                if proc.returncode != 0:
                    raise Failure(explain_apply_error(patch, text, proc.stderr,
                                                      base_label))
            tree = git_out(src, "write-tree", env=env)
            parent = git_out(
                src, "commit-tree", tree, "-p", parent, "-F", "-",
                input=header["message"], date=header["date"],
                env={"GIT_AUTHOR_NAME": header["author_name"],
                     "GIT_AUTHOR_EMAIL": header["author_email"]})
    finally:
        if index.exists():
            index.unlink()
    # Check out the result: git rewrites only the files that differ from
    # what is checked out, which keeps incremental builds incremental.
    checkout = ["checkout", "--quiet"] + (
        ["--force"] if fresh or force or scratch else [])
    git(src, *checkout, "-B", BRANCH, parent)
    result = {"patches": [p.name for p in patches], "skipped": skipped,
              "fuzzed": fuzzed, "src": src, "head": parent, "base": base,
              "base_description": base_label,
              "reference": "CPython " + line.reference}
    if scratch:
        return result
    record = {
        "base": base.record.get("imported"),
        "base_kind": base.kind,
        "base_version": base.version,
        "head": parent,
        "upto": upto,
        "reference": line.reference,
        "skipped": skipped,
        "fuzzed": fuzzed,
        "patches": {p.name: basestore.sha256_file(p.path) for p in patches},
        # The copies of the added files, as they were when applied.
        "added": newfiles.copy_hashes(ws, line, series),
    }
    (ws.build_dir(line) / "applied.json").write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n")
    return result


def ensure_applied(ws, line, out=print):
    """Apply the series unless build/<line>/src already has exactly it."""
    series = Series.load(ws.series_dir(line))
    record = read_record(ws, line)
    base = basestore.select(ws, line)
    if base is None:
        raise UsageError(no_base_message(line))
    current = (record is not None and record.get("upto") is None
               and record.get("base") == base.record.get("imported")
               and record.get("patches") == {
                   p.name: basestore.sha256_file(p.path) for p in series.patches}
               and record.get("added") == newfiles.copy_hashes(ws, line, series)
               and (ws.src_dir(line) / ".git").exists())
    if current:
        head = git_out(ws.src_dir(line), "rev-parse", "HEAD")
        if head == record["head"]:
            return {"src": ws.src_dir(line), "base": base, "head": head,
                    "skipped": {}, "patches": list(record["patches"]),
                    "base_description": "CPython %s (%s base)"
                    % (base.version, base.kind), "up_to_date": True}
    result = apply_series(ws, line)
    print_result(result, out)
    return result
