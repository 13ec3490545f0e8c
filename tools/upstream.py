"""Turn the series into branches of a CPython clone, ready to push.

  upstream DIR                       one branch per patch, named from its
                                     subject: the base plus that patch and
                                     the patches before it
  upstream DIR --single-branch NAME  one branch, one commit per patch
  --onto REF         the base commit (default: the clone's HEAD): main for a
                     feature, a bugfix branch for a fix
  --force            move branches that already exist
  --gh-issue N       fill in the issue number of patches that still carry
                     the placeholder bpo-0
  --compare REF      also say whether the series applies to REF, and where
                     the upstream TODOs it removes stand there

The commits are made by `git am --3way` of the patches' mails in a
temporary work tree, so the clone's checkout does not move; a patch that
does not apply is named with its hunk.  Prints the `git push` command.
"""

import re
import shutil
import tempfile
from pathlib import Path

from .model import news
from .model.errors import Failure, UsageError
from .model.gitutil import require_program, run as run_command
from .model.series import Series, failed_hunk

# Words left out of branch names: articles and the like, and the verbs that
# start most subjects without saying what the branch is about.
STOP_WORDS = {"a", "an", "the", "of", "to", "for", "in", "on", "and", "with",
              "by", "from", "add", "implement", "support", "introduce",
              "provide"}
MAX_WORDS = 4


def add_arguments(parser):
    parser.add_argument("clone", metavar="CPYTHON_DIR",
                        help="a git clone of CPython (with a work tree)")
    parser.add_argument("--onto", metavar="REF", default="HEAD",
                        help="commit to put the series on (default: HEAD)")
    parser.add_argument("--single-branch", metavar="NAME",
                        help="make one branch NAME with a commit per patch")
    parser.add_argument("--force", action="store_true",
                        help="replace branches that already exist")
    parser.add_argument("--gh-issue", type=int, metavar="N",
                        help="issue number for patches whose subject and "
                             "NEWS entry still carry a placeholder")
    parser.add_argument("--compare", metavar="REF", action="append",
                        default=[],
                        help="also report whether the series applies to REF "
                             "(e.g. main) and whether the upstream TODOs it "
                             "removes are still there (repeatable)")


def clone_git(clone, *args, check=True):
    """git in the user's clone, with the user's own configuration."""
    return run_command(["git", "-C", str(clone), *args], check=check)


def check_clone(path):
    """The top directory of the clone at PATH, or UsageError."""
    clone = Path(path)
    if not clone.is_dir():
        raise UsageError("%s is not a directory: name a git clone of CPython"
                         % clone)
    proc = clone_git(clone, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UsageError("%s is not a git clone with a work tree: name a "
                         "clone of CPython (git clone ...)" % clone)
    top = Path(proc.stdout.strip())
    if top.resolve() != clone.resolve():
        raise UsageError("%s is inside the clone %s: name the clone's top "
                         "directory" % (clone, top))
    dirty = clone_git(clone, "status", "--porcelain", "--untracked-files=no",
                      check=False)
    if dirty.returncode != 0:
        raise UsageError("git status fails in %s: %s" % (
            clone, (dirty.stderr.strip().splitlines() or ["?"])[-1]))
    if dirty.stdout.strip():
        raise UsageError("%s has uncommitted changes (%s): commit or stash "
                         "them first" % (clone, dirty.stdout.splitlines()[0]
                                         .strip()))
    git_dir = Path(clone_git(clone, "rev-parse", "--absolute-git-dir")
                   .stdout.strip())
    for busy in ("rebase-apply", "rebase-merge", "MERGE_HEAD",
                 "CHERRY_PICK_HEAD"):
        if (git_dir / busy).exists():
            raise UsageError("%s is in the middle of a rebase, am or merge "
                             "(%s): finish or abort it first" % (clone, busy))
    ident = clone_git(clone, "var", "GIT_COMMITTER_IDENT", check=False)
    if ident.returncode != 0:
        raise UsageError("git in %s does not know who commits: set user.name "
                         "and user.email (git config --global ...)" % clone)
    return clone


def resolve(clone, ref):
    proc = clone_git(clone, "rev-parse", "--verify", "--quiet",
                     ref + "^{commit}", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UsageError("%s is not a commit of %s (try a branch, a tag such "
                         "as v3.7.3, or a commit id)" % (ref, clone))
    return proc.stdout.strip()


def branch_name(subject, taken):
    """A branch name from a subject: the issue, then a few key words."""
    issue = re.match(r"^((?:bpo|gh)-\d+)(?:,\s*(?:bpo|gh)-\d+)*:\s*(.*)$",
                     subject)
    if issue:
        prefix, heading = issue.group(1), issue.group(2)
    else:
        # A placeholder such as gh-NNNNN says nothing about the branch.
        prefix, heading = None, re.sub(r"^(?:bpo|gh)-[^\s:]+:\s*", "", subject)
    if news.subject_has_placeholder(subject):
        prefix = None
    # Split CamelCase (PickleBuffer -> Pickle Buffer) before lowering.
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", heading)
    words = [w for w in re.findall(r"[a-z0-9]+", spaced.lower())
             if w not in STOP_WORDS]
    parts = ([prefix] if prefix else []) + words[:MAX_WORDS]
    name = "-".join(parts) or "patch"
    unique, count = name, 2
    while unique in taken:
        unique, count = "%s-%d" % (name, count), count + 1
    taken.add(unique)
    return unique


def explain_conflict(tree, patch, mail, label):
    """Which hunk of PATCH does not apply in TREE, as one line."""
    proc = clone_git(tree, "apply", "--check", str(mail), check=False)
    failed = failed_hunk(patch.text(), proc.stderr)
    if failed:
        path, number, start = failed
        if number:
            return ("%s does not apply onto %s: hunk #%d of %s (at line %d) "
                    "conflicts, in a 3-way merge too"
                    % (patch.name, label, number, path, start))
        return ("%s does not apply onto %s: %s at line %d conflicts"
                % (patch.name, label, path, start))
    missing = re.search(r"(\S+): (?:does not exist in index|No such file)",
                        proc.stderr)
    if missing:
        return ("%s does not apply onto %s: it changes %s, which %s does not "
                "have" % (patch.name, label, missing.group(1), label))
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error")]
    return "%s does not apply onto %s: %s" % (
        patch.name, label, lines[0].replace("error: ", "") if lines
        else "git am failed")


def apply_mails(clone, base, patches, gh_issue, label):
    """Commit each patch onto BASE with git am; the commit ids in order.
    LABEL names BASE in errors (the ref the user gave)."""
    label = "%s (%s)" % (label, base[:12])
    work = Path(tempfile.mkdtemp(prefix="zerocopy-upstream-"))
    tree = work / "tree"
    clone_git(clone, "worktree", "add", "--detach", "--quiet", str(tree), base)
    commits = []
    try:
        for patch in patches:
            mail = work / (patch.name + ".mail")
            mail.write_text(news.fill_issue_in_mail(patch.text(), gh_issue),
                            encoding="utf-8")
            proc = clone_git(tree, "am", "--quiet", "--keep-cr", "--3way",
                             str(mail), check=False)
            if proc.returncode != 0:
                clone_git(tree, "am", "--abort", check=False)
                raise Failure(explain_conflict(tree, patch, mail, label))
            commits.append(clone_git(tree, "rev-parse", "HEAD").stdout.strip())
    finally:
        clone_git(clone, "worktree", "remove", "--force", str(tree),
                  check=False)
        clone_git(clone, "worktree", "prune", check=False)
        shutil.rmtree(work, ignore_errors=True)
    return commits


def removed_todos(patch):
    """(path, text) of the TODO/XXX/FIXME lines a patch removes."""
    path = None
    for text in patch.text().splitlines():
        match = re.match(r"^--- a/(\S+)$", text)
        if match:
            path = match.group(1)
        elif text.startswith("-") and not text.startswith("---") and path \
                and re.search(r"\b(TODO|XXX|FIXME)\b", text):
            yield path, text[1:].strip()


def report_distance(clone, ref, patches, gh_issue, trial):
    """Say whether the series applies at REF and where the upstream TODOs
    it removes stand there."""
    commit = resolve(clone, ref)
    if trial:
        try:
            apply_mails(clone, commit, patches, gh_issue, ref)
            print("%s (%s): the series applies" % (ref, commit[:12]))
        except Failure as exc:
            print("%s (%s): the series does not apply: %s"
                  % (ref, commit[:12], exc.message))
    for patch in patches:
        for path, text in removed_todos(patch):
            hits = clone_git(clone, "grep", "-n", "-F", "-e", text, commit,
                             "--", path, check=False).stdout.splitlines()
            where = [":".join(hit.split(":")[1:3]) for hit in hits]
            if where:
                print("  %s removes an upstream TODO still at %s %s: %s"
                      % (patch.name, ref, ", ".join(where), text))
            else:
                print("  %s removes a TODO that %s no longer has: %s"
                      % (patch.name, ref, text))


def run(ws, line, args):
    for ref in args.compare:
        resolve(check_clone(args.clone), ref)
    require_program("git", "to make branches")
    clone = check_clone(args.clone)
    onto, single, gh_issue = args.onto, args.single_branch, args.gh_issue
    base = resolve(clone, onto)
    series = Series.load(ws.series_dir(line), nonempty=True)
    # A UsageError names a patch that is no mail.
    subjects = [patch.header()["subject"] for patch in series.patches]
    if single:
        if clone_git(clone, "check-ref-format", "--branch", single,
                     check=False).returncode != 0:
            raise UsageError("%r is not a valid branch name" % single)
        names = [single]
    else:
        taken = set()
        names = [branch_name(news.fill_issue_in_subject(subject, gh_issue),
                             taken) for subject in subjects]
    heads = clone_git(clone, "for-each-ref", "--format=%(refname)",
                      "refs/heads/").stdout.split()
    existing = [name for name in names if "refs/heads/" + name in heads]
    if existing and not args.force:
        raise UsageError("branch %s already exists in %s: pick another name "
                         "or replace it with --force" % (existing[0], clone))
    current = clone_git(clone, "symbolic-ref", "--quiet", "--short", "HEAD",
                        check=False).stdout.strip()
    if current and current in names:
        raise UsageError("branch %s is checked out in %s: switch to another "
                         "branch first" % (current, clone))
    commits = apply_mails(clone, base, series.patches, gh_issue, onto)
    if single:
        made = [(single, commits[-1],
                 "%d commit(s), one per patch" % len(commits))]
    else:
        made = []
        for count, patch in enumerate(series.patches):
            before = " and the %d patch(es) before it" % count if count else ""
            made.append((names[count], commits[count], patch.name + before))
    for name, commit, _what in made:
        clone_git(clone, "branch", "--force", name, commit)
    print("on %s (%s) in %s:" % (onto, base[:12], clone))
    for name, commit, what in made:
        print("  %s  %s  (%s)" % (name, commit[:12], what))
    report_distance(clone, onto, series.patches, gh_issue, False)
    for ref in args.compare:
        report_distance(clone, ref, series.patches, gh_issue, True)
    waiting = [p.name for p, subject in zip(series.patches, subjects)
               if news.placeholder_issue(subject)
               or any(map(news.path_has_placeholder, p.adds()))]
    if waiting and not gh_issue:
        print("NOT READY: %s still carr%s the placeholder issue number (%s); "
              "open the issue, then run again with --gh-issue N --force"
              % (", ".join(waiting), "ies" if len(waiting) == 1 else "y",
                 news.PLACEHOLDER))
    remotes = clone_git(clone, "remote").stdout.split()
    remote = next((name for name in remotes if name != "upstream"),
                  remotes[0] if remotes else "<your-fork>")
    print("push with: git -C %s push %s %s" % (clone, remote, " ".join(names)))
    return 0
