"""`tools upstream`: branches of a CPython clone made from the series."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, git, run_tools
from test_tools_check import GOOD_PATCHES, make_workspace, news_path

BRANCHES = ["bpo-1-raise-highest-protocol", "bpo-2-teach-accelerator-protocol-5",
            "bpo-3-default-protocol-4"]


def make_clone(tree, path):
    """A git repository of TREE, as a user's clone of CPython would be."""
    shutil.copytree(str(tree), str(path))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "CPython base")
    git(path, "config", "user.name", "Clone User")
    git(path, "config", "user.email", "clone@example.invalid")
    git(path, "remote", "add", "origin", "https://example.invalid/fork.git")
    return path


@pytest.fixture
def setup(tmp_path):
    spec = make_workspace(tmp_path)
    spec["clone"] = make_clone(spec["tree"], tmp_path / "clone")
    return spec


def upstream(spec, *args):
    return run_tools("upstream", spec["clone"], *args, workspace=spec["ws"],
                     cache=spec["cache"])


def log(clone, rev, fmt="%an|%ae|%ad|%cn|%s"):
    return git(clone, "log", "--date=raw", "--format=" + fmt, rev).splitlines()


def patch_header(spec, number):
    from tools.model.series import Series
    return Series.load(spec["series_dir"]).patches[number].header()


def test_one_branch_per_patch_with_its_prefix(setup):
    clone = setup["clone"]
    head = git(clone, "rev-parse", "HEAD").strip()
    proc = upstream(setup)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    for count, name in enumerate(BRANCHES, 1):
        assert name in proc.stdout
        commits = log(clone, "main.." + name)
        assert len(commits) == count
        assert git(clone, "merge-base", "main", name).strip() == head
        # git am semantics: author and message of the patch, committed by
        # the clone's user.
        header = patch_header(setup, count - 1)
        author, email, _date, committer, subject = commits[0].split("|")
        assert (author, email) == (header["author_name"],
                                   header["author_email"])
        assert committer == "Clone User"
        assert subject == header["subject"]
        body = git(clone, "log", "-1", "--format=%B", name)
        assert GOOD_PATCHES[count - 1]["body"] in body
    assert "push with: git -C %s push origin %s" % (clone, " ".join(BRANCHES)) \
        in proc.stdout
    # The files a patch adds are part of its commit.
    first = git(clone, "show", "--name-status", "--format=", BRANCHES[0])
    assert "A\t" + news_path(1) in first
    third = git(clone, "show", "--name-status", "--format=", BRANCHES[2])
    assert "A\tLib/test/test_picklebuffer.py" in third
    assert "A\t" + news_path(3) in third
    # The clone's own checkout did not move, and no work tree is left over.
    assert git(clone, "rev-parse", "HEAD").strip() == head
    assert git(clone, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(clone, "status", "--porcelain") == ""
    assert len(git(clone, "worktree", "list").splitlines()) == 1


def test_same_tree_as_tools_apply(setup):
    run_tools("base", "import", setup["tree"], workspace=setup["ws"],
              cache=setup["cache"], check=0)
    run_tools("apply", workspace=setup["ws"], cache=setup["cache"], check=0)
    upstream(setup)
    src = setup["ws"] / "build" / "3.7" / "src"
    assert git(src, "rev-parse", "HEAD^{tree}") == \
        git(setup["clone"], "rev-parse", BRANCHES[-1] + "^{tree}")


def test_single_branch(setup):
    proc = upstream(setup, "--single-branch", "pep574")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    subjects = log(setup["clone"], "main..pep574", "%s")
    assert subjects == [p["subject"] for p in reversed(GOOD_PATCHES)]
    assert "push origin pep574" in proc.stdout
    for name in BRANCHES:
        assert name not in git(setup["clone"], "branch")


def test_onto_another_ref(setup):
    clone = setup["clone"]
    base = git(clone, "rev-parse", "HEAD").strip()
    readme = Path(clone, "README.rst")
    readme.write_text(readme.read_text() + "A later upstream commit.\n")
    git(clone, "commit", "-qam", "Later upstream work")
    proc = upstream(setup, "--onto", base)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert git(clone, "merge-base", "main", BRANCHES[0]).strip() == base
    assert "A later upstream commit." not in git(
        clone, "show", BRANCHES[-1] + ":README.rst")


def test_existing_branch_needs_force(setup):
    upstream(setup).check_returncode()
    proc = upstream(setup)
    assert_clean_error(proc, 2, "branch %s already exists" % BRANCHES[0])
    before = git(setup["clone"], "rev-parse", BRANCHES[0])
    proc = upstream(setup, "--force")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    # Same patches onto the same base: the same trees again.
    assert git(setup["clone"], "rev-parse", BRANCHES[0] + "^{tree}") == \
        git(setup["clone"], "rev-parse", before.strip() + "^{tree}")


def test_refuses_a_dirty_clone(setup):
    Path(setup["clone"], "README.rst").write_text("local edit\n")
    proc = upstream(setup)
    assert_clean_error(proc, 2, "has uncommitted changes")
    assert BRANCHES[0] not in git(setup["clone"], "branch")


def test_refuses_an_unknown_ref(setup):
    proc = upstream(setup, "--onto", "v9.9.9")
    assert_clean_error(proc, 2, "v9.9.9 is not a commit of")


def test_refuses_what_is_not_a_clone(tmp_path, setup):
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = run_tools("upstream", plain, workspace=setup["ws"])
    assert_clean_error(proc, 2, "is not a git clone with a work tree")
    proc = run_tools("upstream", tmp_path / "missing", workspace=setup["ws"])
    assert_clean_error(proc, 2, "is not a directory")


def test_a_patch_that_does_not_apply_is_named(setup):
    clone = setup["clone"]
    pickle_py = Path(clone, "Lib", "pickle.py")
    pickle_py.write_text(pickle_py.read_text().replace(
        "HIGHEST_PROTOCOL = 4", "HIGHEST_PROTOCOL = 3"))
    git(clone, "commit", "-qam", "Diverge")
    proc = upstream(setup)
    assert_clean_error(proc, 1, "0001-bpo-1-Raise-the-highest-protocol.patch "
                       "does not apply onto")
    # Nothing half-done is left behind.
    assert git(clone, "branch", "--format=%(refname:short)").split() == ["main"]
    assert len(git(clone, "worktree", "list").splitlines()) == 1
    assert git(clone, "status", "--porcelain") == ""


def test_onto_main_where_upstream_moved_on(setup):
    """A feature goes onto main: the series is rebased onto main's newer
    commits, which move the context of its hunks."""
    clone = setup["clone"]
    base = git(clone, "rev-parse", "HEAD").strip()
    git(clone, "checkout", "-q", "-b", "3.7")
    pickle_py = Path(clone, "Lib", "pickle.py")
    pickle_py.write_text('"""Moved on upstream."""\n\n' + pickle_py.read_text())
    pickle_c = Path(clone, "Modules", "_pickle.c")
    pickle_c.write_text("#include <stddef.h>\n" + pickle_c.read_text())
    git(clone, "commit", "-qam", "Upstream work on main")
    git(clone, "branch", "-q", "-f", "main", "HEAD")
    git(clone, "checkout", "-q", base)
    proc = upstream(setup, "--onto", "main")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    main = git(clone, "rev-parse", "main").strip()
    assert "on main (%s)" % main[:12] in proc.stdout
    for count, name in enumerate(BRANCHES, 1):
        assert git(clone, "merge-base", "main", name).strip() == main
        assert len(log(clone, "main.." + name)) == count
    last = git(clone, "show", BRANCHES[-1] + ":Lib/pickle.py")
    assert last.startswith('"""Moved on upstream."""')
    assert "HIGHEST_PROTOCOL = 5" in last and "DEFAULT_PROTOCOL = 4" in last
    last_c = git(clone, "show", BRANCHES[-1] + ":Modules/_pickle.c")
    assert last_c.startswith("#include <stddef.h>\n")
    assert "static int highest_protocol = 5;" in last_c
    assert git(clone, "rev-parse", "HEAD").strip() == base


def test_onto_main_names_the_conflicting_patch_and_hunk(setup):
    clone = setup["clone"]
    pickle_c = Path(clone, "Modules", "_pickle.c")
    pickle_c.write_text(pickle_c.read_text().replace("= 4;", "= 6;"))
    git(clone, "commit", "-qam", "Upstream changes the same line")
    main = git(clone, "rev-parse", "main").strip()
    proc = upstream(setup, "--onto", "main")
    assert_clean_error(proc, 1, "0002-bpo-2-Teach-the-accelerator-protocol-"
                       "5.patch does not apply onto main (%s): hunk #1 of "
                       "Modules/_pickle.c (at line 1) conflicts, in a 3-way "
                       "merge too" % main[:12])
    # The clone is left as it was: no branch, no work tree, no am or
    # rebase in progress, nothing modified.
    assert git(clone, "branch", "--format=%(refname:short)").split() == ["main"]
    assert len(git(clone, "worktree", "list").splitlines()) == 1
    assert git(clone, "status", "--porcelain") == ""
    git_dir = Path(git(clone, "rev-parse", "--absolute-git-dir").strip())
    assert not (git_dir / "rebase-apply").exists()
    assert not (git_dir / "worktrees").exists() or \
        not any((git_dir / "worktrees").iterdir())


def test_branch_names_from_subjects():
    from tools.upstream import branch_name
    taken = set()
    assert branch_name("bpo-36785: Add the PickleBuffer type", taken) == \
        "bpo-36785-pickle-buffer-type"
    assert branch_name("bpo-35845: Add memoryview.toreadonly()", taken) == \
        "bpo-35845-memoryview-toreadonly"
    assert branch_name("gh-12345: Implement PEP 574 (pickle protocol 5)",
                       taken) == "gh-12345-pep-574-pickle-protocol"
    assert branch_name("pickle: write large str without a temporary copy",
                       taken) == "pickle-write-large-str"
    assert branch_name("gh-NNNNN: pickle: write large str", taken) == \
        "pickle-write-large-str-2"
    assert branch_name("bpo-0: pickle: write large str", taken) == \
        "pickle-write-large-str-3"
    # Two patches of one issue with the same words still get two names.
    assert branch_name("bpo-36785: Add the PickleBuffer type", taken) == \
        "bpo-36785-pickle-buffer-type-2"


def real_source_base():
    from tools.model.workspace import LINES, Workspace
    from tools.model import basestore
    return basestore.load(Workspace(), LINES["3.7"], "source")


def test_real_series_onto_the_imported_base(tmp_path):
    """The real 3.7 series onto a throwaway repository of the imported base."""
    base = real_source_base()
    if base is None:
        pytest.skip("no CPython 3.7 source base imported (python3 -m tools "
                    "base download)")
    clone = make_clone(base.tree, tmp_path / "cpython")
    git(clone, "tag", "v%s" % base.version)
    proc = run_tools("upstream", clone, "--onto", "v%s" % base.version,
                     "--single-branch", "zerocopy")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    from tools.model.series import Series
    series = Series.load(REPO / "patches" / "3.7")
    subjects = log(clone, "main..zerocopy", "%s")
    assert subjects == [p.header()["subject"] for p in reversed(series.patches)]
    # Every file the series adds is in the commit of the patch that adds
    # it, as in new-files/3.7/.
    added = [(number, path) for number, patch in enumerate(series.patches)
             for path in patch.adds()]
    assert "Objects/picklebufobject.c" in [path for _, path in added]
    for number, path in added:
        shown = subprocess.run(["git", "-C", str(clone), "show",
                                "zerocopy~%d:%s" % (len(series.patches) - 1
                                                    - number, path)],
                               stdout=subprocess.PIPE)
        assert shown.stdout == (REPO / "new-files" / "3.7" / path
                                ).read_bytes(), path


def test_placeholder_issue_and_upstream_todo(tmp_path):
    """A patch of our own (no issue yet: the placeholder bpo-0) that removes
    an upstream TODO: the report names the TODO where it still stands,
    refuses to call the branch ready, and --gh-issue fills the number into
    subject and NEWS entry."""
    from test_tools_check import PICKLE_C, buildable_tree
    tree = buildable_tree(tmp_path / "cpython")
    (tree / "Modules" / "_pickle.c").write_text(
        PICKLE_C + "/* TODO: avoid the copy of large payloads. */\n")
    spec = make_workspace(tmp_path, tree=tree, patches=[{
        "subject": "bpo-0: pickle: Avoid the copy of large payloads",
        "body": "Large payloads no longer go through a temporary.",
        "edits": {"Modules/_pickle.c": PICKLE_C},
        "news_name": "Misc/NEWS.d/next/Library/"
                     "2026-01-01-00-00-00.bpo-0.abc001.rst"}])
    clone = make_clone(spec["tree"], tmp_path / "clone")
    proc = run_tools("upstream", clone, "--compare", "main",
                     workspace=spec["ws"], cache=spec["cache"])
    assert proc.returncode == 0, proc.stderr
    assert "removes an upstream TODO still at HEAD Modules/_pickle.c:3" \
        in proc.stdout, proc.stdout
    assert "main (" in proc.stdout and "the series applies" in proc.stdout
    assert "NOT READY" in proc.stdout and "--gh-issue N" in proc.stdout
    assert "placeholder issue number (bpo-0)" in proc.stdout
    assert "  pickle-avoid-copy-large  " in proc.stdout
    proc = run_tools("upstream", clone, "--gh-issue", "123456", "--force",
                     workspace=spec["ws"], cache=spec["cache"])
    assert proc.returncode == 0, proc.stderr
    assert "NOT READY" not in proc.stdout
    branch = "gh-123456-pickle-avoid-copy-large"
    assert git(clone, "log", "-1", "--format=%s", branch).strip() == \
        "gh-123456: pickle: Avoid the copy of large payloads"
    files = git(clone, "show", "--name-only", "--format=", branch).split()
    assert "Misc/NEWS.d/next/Library/2026-01-01-00-00-00.gh-issue-123456." \
        "abc001.rst" in files
    assert "TODO" not in git(clone, "show", branch + ":Modules/_pickle.c")
