"""Self-contained patches: each carries the files it adds, new-files/<line>/
keeps copies of them, and `git am` of the series gives the tree of apply."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, git, run_tools


def workspace(spec):
    from tools.model.workspace import LINES, Workspace
    return Workspace(spec["ws"], spec["cache"]), LINES["3.7"]


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def test_copies_agree_with_the_patches(applied):
    from tools.model import newfiles
    ws, line = workspace(applied)
    assert newfiles.copy_problems(ws, line) == []
    copy = applied["ws"] / applied["news_copy"]
    copy.write_text("Edited by hand.\n")
    problems = newfiles.copy_problems(ws, line)
    assert [kind for kind, _ in problems] == ["edited"]
    assert applied["news_copy"] in problems[0][1]
    assert "0001-bpo-1-Raise-the-highest-protocol.patch" in problems[0][1]


def test_apply_refuses_a_copy_edited_by_hand(applied):
    ws = applied["ws"]
    copy = ws / applied["news_copy"]
    copy.write_text("Edited by hand.\n")
    before = snapshot(ws / "patches")
    proc = run_tools("apply", workspace=ws, cache=applied["cache"])
    assert_clean_error(proc, 2, "%s differs from the file 0001-bpo-1-Raise-"
                       "the-highest-protocol.patch adds" % applied["news_copy"])
    assert "edit it in build/3.7/src, commit, and run `python3 -m tools " \
        "refresh`" in proc.stderr
    # Nothing is dropped: not the edit, not the patches.
    assert copy.read_text() == "Edited by hand.\n"
    assert snapshot(ws / "patches") == before


def test_apply_refuses_a_copy_no_patch_adds(applied):
    ws = applied["ws"]
    stray = ws / "new-files" / "3.7" / "Objects" / "mine.c"
    stray.parent.mkdir(parents=True)
    stray.write_text("int x;\n")
    proc = run_tools("apply", workspace=ws, cache=applied["cache"])
    assert_clean_error(proc, 2, "new-files/3.7/Objects/mine.c is added by no "
                       "patch of patches/3.7")
    assert stray.exists()


def test_refresh_refuses_to_overwrite_a_copy_edited_by_hand(applied):
    ws = applied["ws"]
    copy = ws / applied["news_copy"]
    copy.write_text("Edited by hand.\n")
    proc = run_tools("refresh", workspace=ws, cache=applied["cache"])
    assert_clean_error(proc, 2, "changed in the workspace since the last apply")
    assert copy.read_text() == "Edited by hand.\n"


def test_refresh_writes_a_copy_again(applied):
    ws = applied["ws"]
    copy = ws / applied["news_copy"]
    text = copy.read_text()
    copy.unlink()
    proc = run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    assert applied["news_copy"] in proc.stdout
    assert copy.read_text() == text


def test_refresh_of_an_edited_added_file_updates_patch_and_copy(applied):
    ws, src = applied["ws"], applied["src"]
    (src / applied["news"]).write_text("Protocol 5 is the new highest.\n")
    git(src, "commit", "-q", "-a", "--fixup", "HEAD~1")
    git(src, "-c", "sequence.editor=true", "rebase", "-q", "-i",
        "--autosquash", "refs/zerocopy/base")
    run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    assert (ws / applied["news_copy"]).read_text() == \
        "Protocol 5 is the new highest.\n"
    patch = (ws / "patches" / "3.7" /
             "0001-bpo-1-Raise-the-highest-protocol.patch").read_text()
    assert "+Protocol 5 is the new highest.\n" in patch
    from tools.model import newfiles
    assert newfiles.copy_problems(*workspace(applied)) == []


def test_git_am_gives_the_tree_of_apply(applied):
    from tools.model.tree import git_am_identity
    ws, line = workspace(applied)
    tree = git_am_identity(ws, line, work=applied["tmp"] / "am",
                                    out=lambda text: None)
    assert tree == git(applied["src"], "rev-parse", "HEAD^{tree}").strip()
    # The same by hand, as a user would: git am of patches/3.7/*.patch on
    # the pristine base tree (`git archive refs/zerocopy/base`).
    pristine = applied["tmp"] / "pristine"
    pristine.mkdir()
    archive = subprocess.run(["git", "-C", str(applied["src"]), "archive",
                              "refs/zerocopy/base"], stdout=subprocess.PIPE,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pristine)], input=archive,
                   check=True)
    git(pristine, "init", "-q")
    git(pristine, "add", "-A")
    git(pristine, "commit", "-qm", "base")
    patches = sorted((applied["ws"] / "patches" / "3.7").glob("*.patch"))
    git(pristine, "am", "-q", *map(str, patches))
    assert git(pristine, "rev-parse", "HEAD^{tree}").strip() == tree
    assert git(pristine, "show", "HEAD~1:" + applied["news"]) == \
        (applied["ws"] / applied["news_copy"]).read_text()


def test_check_runs_the_git_am_check(tmp_path):
    pytest.importorskip("blurb")
    from test_tools_check import import_base, make_workspace
    spec = make_workspace(tmp_path)
    import_base(spec)
    proc = run_tools("check", "--fast", workspace=spec["ws"],
                     cache=spec["cache"])
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "ok   new-files/3.7 holds exactly the files the patches add" \
        in proc.stdout
    assert "git am of 3 patch(es) of patches/3.7 on the pristine CPython " \
        "3.7.3 gives the tree of `tools apply`" in proc.stdout
    # An edited copy fails the static checks, named.
    copy = spec["ws"] / "new-files" / "3.7" / "Lib" / "test" / \
        "test_picklebuffer.py"
    copy.write_text(copy.read_text() + "# more\n")
    proc = run_tools("check", "--fast", workspace=spec["ws"],
                     cache=spec["cache"])
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FAIL new-files/3.7/Lib/test/test_picklebuffer.py differs from " \
        "the file 0003-bpo-3-Default-to-protocol-4.patch adds" in proc.stdout
    assert "new-files/3.7 disagrees with the patches" in proc.stderr


def the_way_out(stderr):
    """The commits the old layout's refusal names: (apply's, refresh's)."""
    found = re.search(r"apply` in a checkout of commit (\w+), then "
                      r"`python3 -m tools refresh` in one of (\w+) ", stderr)
    assert found, stderr
    return found.groups()


def test_the_old_layout_is_refused_with_the_way_out(applied):
    series = applied["ws"] / "patches" / "3.7" / "series"
    series.write_text(series.read_text().replace(
        "protocol.patch\n", "protocol.patch\n    Lib/test/test_x.py\n", 1))
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "is the old layout")
    assert the_way_out(proc.stderr) == ("3d464d8", "0c2a2ef")


def old_layout_workspace(spec):
    """SPEC's series rewritten to the old layout: the NEWS entry kept out
    of its patch, at the workspace root, named on an indented line."""
    from conftest import PICKLE_PY, format_patch
    ws = spec["ws"]
    series_dir = ws / "patches" / "3.7"
    old_tree = spec["tmp"] / "old-cpython"
    shutil.copytree(str(spec["tree"]), str(old_tree))
    first = format_patch(old_tree, {"Lib/pickle.py": PICKLE_PY.replace(
        "HIGHEST_PROTOCOL = 4", "HIGHEST_PROTOCOL = 5")},
        "bpo-1: Raise the highest protocol", "Protocol 5 exists now.")
    (series_dir / "0001-bpo-1-Raise-the-highest-protocol.patch").write_text(
        first)
    news = spec["news"]
    (ws / news).parent.mkdir(parents=True)
    shutil.move(str(ws / spec["news_copy"]), str(ws / news))
    shutil.rmtree(str(ws / "new-files"))
    (series_dir / "series").write_text(
        "0001-bpo-1-Raise-the-highest-protocol.patch\n    %s\n"
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch\n" % news)


def tools_of(commit, directory):
    """The tools/ (and the benchmarks/ some import) of COMMIT of this
    repository, unpacked in DIRECTORY, as `git worktree add` has them."""
    directory.mkdir()
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only",
                             commit, "tools", "benchmarks"],
                            stdout=subprocess.PIPE, text=True, check=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit] +
                             listed.stdout.split(), stdout=subprocess.PIPE,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout,
                   check=True)
    return directory


def test_the_way_out_converts_the_old_layout(synthetic, tmp_path):
    """The refusal's recipe works: the tools of the first commit it names
    apply the old layout, the refresh of the second writes the new one,
    and today's tools apply that to the same tree."""
    old_layout_workspace(synthetic)
    ws, cache = synthetic["ws"], synthetic["cache"]
    # patchcheck reads the series before it needs a base.
    refused = run_tools("patchcheck", workspace=ws, cache=cache)
    assert_clean_error(refused, 2, "is the old layout")
    commits = the_way_out(refused.stderr)
    for commit in commits:
        if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e",
                           commit + "^{commit}"]).returncode != 0:
            pytest.skip("commit %s, which the recipe names, is not in this "
                        "repository" % commit)
    env = dict(os.environ, ZEROCOPY_PICKLE_CACHE=str(cache))
    steps = [(commits[0], ["base", "import", str(synthetic["tree"])]),
             (commits[0], ["apply"]), (commits[1], ["refresh"])]
    for commit, args in steps:
        code = tools_of(commit, tmp_path / ("%s-%s" % (commit, args[0])))
        proc = subprocess.run([sys.executable, "-m", "tools"] + args +
                              ["--workspace", str(ws)], cwd=str(code),
                              env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0, (commit, args, proc.stderr)
    assert "removed %s (now %s)" % (synthetic["news"], synthetic["news_copy"]) \
        in proc.stdout
    src = ws / "build" / "3.7" / "src"
    tree = git(src, "rev-parse", "HEAD^{tree}")
    series = (ws / "patches" / "3.7" / "series").read_text()
    assert [l for l in series.splitlines() if not l.startswith("#")] == [
        "0001-bpo-1-Raise-the-highest-protocol.patch",
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch"]
    first = (ws / "patches" / "3.7" /
             "0001-bpo-1-Raise-the-highest-protocol.patch").read_text()
    assert "create mode 100644 %s" % synthetic["news"] in first
    assert not (ws / "Misc").exists()
    assert (ws / synthetic["news_copy"]).read_text() == \
        "Protocol 5 is the highest protocol.\n"
    # Today's tools apply the converted series to the same tree, and
    # refreshing it again rewrites nothing.
    converted = snapshot(ws / "patches")
    run_tools("apply", "--force", workspace=ws, cache=cache, check=0)
    assert git(src, "rev-parse", "HEAD^{tree}") == tree
    proc = run_tools("refresh", workspace=ws, cache=cache, check=0)
    assert "up to date" in proc.stdout
    assert snapshot(ws / "patches") == converted


@pytest.mark.parametrize("name", ["3.7", "3.13"])
def test_real_series_git_am_gives_the_tree_of_apply(name, tmp_path):
    """The real series: copies agree, and git am on the pristine imported
    base gives the tree of tools apply."""
    from tools.model import basestore, newfiles
    from tools.model.tree import git_am_identity
    from tools.model.workspace import LINES, Workspace
    ws, line = Workspace(), LINES[name]
    base = basestore.load(ws, line, "source")
    if base is None or base.version != line.reference:
        pytest.skip("no CPython %s source base imported (python3 -m tools "
                    "base download --base %s)" % (line.reference, name))
    assert newfiles.copy_problems(ws, line) == []
    said = []
    tree = git_am_identity(ws, line, work=tmp_path / "am",
                                    out=said.append)
    assert len(tree) == 40 and "gives the tree of `tools apply`" in said[0]
