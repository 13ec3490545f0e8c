"""The applied tree: the series applied to a base in a git work tree.

build/<line>/src (or a scratch tree of the tools' own checks) gets one
commit for the base (refs/zerocopy/base) and one commit per patch, with
the patch's author, date and message.  applied.json records what was
applied, so that every verb can ask whether the tree is exactly the
series of patches/ (`is_current`).
"""

import json
import re
import shutil
from pathlib import Path

from . import basestore, newfiles
from .errors import Failure, UsageError
from .gitutil import git, git_out, require_program, run as run_command
from .series import Series, failed_hunk
from .workspace import base_option

BASE_DATE = "2000-01-01T00:00:00+00:00"
BRANCH = "series"
# Build products that appear in the source tree (bytecode of the stdlib,
# in-tree helpers) are not edits.
EXCLUDES = "__pycache__/\n*.pyc\n"


def print_result(result, out=print):
    out("applied %d patch(es) to %s in %s"
        % (len(result["patches"]), result["base"].label(), result["src"]))
    for name, skipped in result["skipped"].items():
        out("  %s: skipped %s (not part of this base)" % (name, ", ".join(skipped)))
    for name, context in result.get("fuzzed", {}).items():
        out("  %s: applied with %d line(s) of context: this base differs "
            "from %s around some of its hunks" % (name, context,
                                                  result["reference"]))


def read_record(ws, line):
    """applied.json of build/<line>/src, or None."""
    try:
        return json.loads((ws.build_dir(line) / "applied.json").read_text())
    except (OSError, ValueError):
        return None


def write_record(ws, line, record):
    (ws.build_dir(line) / "applied.json").write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n")


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
    head = git_out(src, "rev-parse", "--verify", "--quiet", "HEAD",
                   check=False)
    if record and head and head != record["head"]:
        raise UsageError(
            "%s has commits that are not in patches/: run `python3 -m tools "
            "refresh` to keep them, or apply with --force to drop them" % src)


def base_commit(src, base):
    """Commit the base tree once; reuse it while the base is unchanged."""
    identity = "%s %s %s" % (base.kind, base.version,
                             base.record.get("imported"))
    known = git_out(src, "config", "--get", "zerocopy.base", check=False)
    existing = git_out(src, "rev-parse", "--verify", "--quiet",
                       "refs/zerocopy/base", check=False)
    if existing and known == identity:
        return existing
    index = src / ".git" / "zerocopy-base-index"
    env = {"GIT_INDEX_FILE": str(index)}
    git(src, "--work-tree", str(base.tree), "add", "--all", "--force", ".",
        env=env)
    tree = git_out(src, "write-tree", env=env)
    index.unlink()
    commit = git_out(src, "commit-tree", tree, "-m", base.label(),
                     date=BASE_DATE)
    git(src, "update-ref", "refs/zerocopy/base", commit)
    git(src, "config", "zerocopy.base", identity)
    return commit


def explain_apply_error(patch, text, stderr, base_label):
    """Turn git apply's complaint into one line naming patch and hunk."""
    failed = failed_hunk(text, stderr)
    if failed:
        path, number, start = failed
        if number:
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
    """Apply the first UPTO patches (all by default) in build/<line>/src,
    or in SRC, a scratch tree of the tools' own checks: that one is reset
    without asking, and applied.json is left alone."""
    require_program("git", "to apply the series")
    base = basestore.select(ws, line, kind)
    if base is None:
        raise UsageError(basestore.no_base_message(line))
    series = Series.load(ws.series_dir(line))
    patches = series.patches[:upto]
    scratch = src is not None
    src = Path(src) if scratch else ws.src_dir(line)
    fresh = not (src / ".git").exists()
    if not scratch:
        # The copies in new-files/<line>/ are written from the commits: one
        # edited by hand would be lost, so say so rather than ignore it.
        newfiles.require_copies_agree(ws, line, series)
        check_work_tree(ws, line, src, force)
    elif not fresh:
        git(src, "reset", "--quiet", "--hard")
    if fresh:
        src.mkdir(parents=True, exist_ok=True)
        git(src, "init", "--quiet")
        git(src, "config", "core.abbrev", "12")
        (src / ".git" / "info").mkdir(exist_ok=True)
        (src / ".git" / "info" / "exclude").write_text(EXCLUDES)
    parent = base_commit(src, base)
    base_files = None
    if base.kind == "installed":
        base_files = set(git_out(src, "ls-tree", "-r", "--name-only",
                                 parent).splitlines())
    index = src / ".git" / "zerocopy-apply-index"
    env = {"GIT_INDEX_FILE": str(index)}
    # Another release of the line than the one the series was written
    # against may have moved the context of a hunk; accept less context
    # there, like patch's fuzz, and say so.
    contexts = (3,) if base.version == line.reference else (3, 2, 1)
    skipped, fuzzed = {}, {}
    try:
        git(src, "read-tree", parent, env=env)
        for patch in patches:
            text = patch.text()
            header = patch.header()
            excludes = []
            if base_files is not None:
                # An installed base lacks the C sources: leave out the hunks
                # of the files it lacks, but never those of the files the
                # series adds (nor later changes to them).
                base_files.update(patch.adds())
                excludes = [p for p in patch.touched_files()
                            if p not in base_files]
                if excludes:
                    skipped[patch.name] = excludes
            if set(patch.touched_files()) - set(excludes):
                args = ["apply", "--cached", "--whitespace=nowarn",
                        *["--exclude=" + p for p in excludes]]
                for context in contexts:
                    fuzz = ["-C%d" % context] if context < 3 else []
                    proc = git(src, *args, *fuzz, "-", env=env, input=text,
                               check=False)
                    if proc.returncode == 0:
                        break
                if proc.returncode != 0:
                    raise Failure(explain_apply_error(patch, text, proc.stderr,
                                                      base.label()))
                if context < 3:
                    fuzzed[patch.name] = context
            tree = git_out(src, "write-tree", env=env)
            parent = git_out(
                src, "commit-tree", tree, "-p", parent, "-F", "-",
                input=header["message"], date=header["date"],
                env={"GIT_AUTHOR_NAME": header["author_name"],
                     "GIT_AUTHOR_EMAIL": header["author_email"]})
    finally:
        index.unlink(missing_ok=True)
    # Check out the result: git rewrites only the files that differ from
    # what is checked out, which keeps incremental builds incremental.
    overwrite = ["--force"] if fresh or force or scratch else []
    git(src, "checkout", "--quiet", *overwrite, "-B", BRANCH, parent)
    if not scratch:
        write_record(ws, line, {
            "base": base.record.get("imported"), "base_kind": base.kind,
            "base_version": base.version, "head": parent, "upto": upto,
            "reference": line.reference, "skipped": skipped,
            "fuzzed": fuzzed, "patches": patch_hashes(patches),
            # The copies of the added files, as they were when applied.
            "added": newfiles.copy_hashes(ws, line, series)})
    return {"patches": [p.name for p in patches], "skipped": skipped,
            "fuzzed": fuzzed, "src": src, "head": parent, "base": base,
            "reference": "CPython " + line.reference}


def apply_downstream(ws, line, lib_dir):
    """Apply patches/<line>-overlay/ to LIB_DIR, the Lib/ directory of an
    installed interpreter, as the series applies (git apply of each mail,
    refusing whitespace errors); the names of the patches applied."""
    directory = ws.overlay_series_dir(line)
    if not (directory / "series").exists():
        return []
    lib_dir = Path(lib_dir).resolve()
    patches = Series.load(directory).patches
    for patch in patches:
        patch.header()      # a UsageError names a patch that is no mail
        # -p2: a/Lib/pickle.py is pickle.py of LIB_DIR; the ceiling keeps
        # git from taking LIB_DIR for a part of the workspace's checkout.
        proc = run_command(["git", "apply", "-p2", "--whitespace=error",
                            "-"], cwd=lib_dir, input=patch.text(),
                           check=False, env={"GIT_CEILING_DIRECTORIES":
                                             str(lib_dir.parent)})
        if proc.returncode != 0:
            raise Failure(explain_apply_error(
                patch, patch.text(), proc.stderr.replace(" a/Lib/", " "),
                "the Lib/ of %s" % lib_dir))
    return [patch.name for patch in patches]


def patch_hashes(patches):
    """{name: sha256} of PATCHES: what applied.json records as "patches"."""
    return {p.name: basestore.sha256_file(p.path) for p in patches
            if p.path.exists()}


def is_current(ws, line, series, record):
    """Whether RECORD (of applied.json) is of exactly SERIES, all of it,
    with the copies of new-files/<line>/ as they are now."""
    return (record is not None and record.get("upto") is None
            and record.get("patches") == patch_hashes(series.patches)
            and record.get("added") == newfiles.copy_hashes(ws, line, series))


def ensure_applied(ws, line):
    """Apply the series unless build/<line>/src already has exactly it,
    on the base apply_series would pick."""
    series = Series.load(ws.series_dir(line))
    record = read_record(ws, line)
    base = basestore.select(ws, line)
    if base is None:
        raise UsageError(basestore.no_base_message(line))
    src = ws.src_dir(line)
    if is_current(ws, line, series, record) and \
            record.get("base_kind") == base.kind and \
            record.get("base") == base.record.get("imported") and \
            (src / ".git").exists() and \
            git_out(src, "rev-parse", "HEAD") == record["head"]:
        return {"src": src, "base": base, "head": record["head"],
                "skipped": {}, "patches": list(record["patches"])}
    result = apply_series(ws, line)
    print_result(result)
    return result


# -- git am of the patches gives the tree of tools apply ------------------------

def git_am_identity(ws, line, work=None, out=print):
    """Prove that `git am` of the patches on the pristine source base gives
    exactly the tree, authors, dates and messages of `tools apply`; Failure
    otherwise.  WORK (default build/<line>/check/am) is scratch."""
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
    src = apply_series(ws, line, kind="source", src=work / "apply")["src"]
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
