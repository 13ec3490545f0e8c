"""Self-contained patches: each carries the files it adds, new-files/<line>/
keeps copies of them, and `git am` of the series gives the tree of apply."""

import subprocess
from pathlib import Path

import pytest

from conftest import assert_clean_error, git, run_tools


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


def test_the_old_layout_is_refused_with_the_way_out(applied):
    series = applied["ws"] / "patches" / "3.7" / "series"
    series.write_text(series.read_text().replace(
        "protocol.patch\n", "protocol.patch\n    Lib/test/test_x.py\n", 1))
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "is the old layout")
    assert "`python3 -m tools refresh`" in proc.stderr


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
