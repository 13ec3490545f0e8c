"""`tools apply` and `tools refresh` on a synthetic base and series."""

from pathlib import Path

from conftest import assert_clean_error, git, run_tools


def log(src):
    return git(src, "log", "--format=%an|%s").splitlines()


def test_apply_makes_one_commit_per_patch(applied):
    src = applied["src"]
    assert log(src) == ["Test|bpo-2: Teach the accelerator protocol 5",
                        "Test|bpo-1: Raise the highest protocol",
                        "Zero-copy pickle workspace|CPython 3.7.3 (source base)"]
    assert "HIGHEST_PROTOCOL = 5" in (src / "Lib" / "pickle.py").read_text()
    assert "= 5;" in (src / "Modules" / "_pickle.c").read_text()
    # The added file arrives with the patch that names it.
    first = git(src, "show", "--name-status", "--format=", "HEAD~1")
    assert "A\t" + applied["news"] in first


def test_apply_without_base(synthetic):
    proc = run_tools("apply", workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, "no CPython 3.7 base imported")


def test_reapply_rewrites_only_changed_files(applied):
    src = applied["src"]
    pickle_c = src / "Modules" / "_pickle.c"
    pickle_py = src / "Lib" / "pickle.py"
    before = pickle_py.stat().st_mtime_ns
    patch = applied["ws"] / "patches" / "3.7" / \
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch"
    patch.write_text(patch.read_text().replace(
        "+static int highest_protocol = 5;", "+static int highest_protocol = 5; /* PEP 574 */"))
    run_tools("apply", workspace=applied["ws"], cache=applied["cache"], check=0)
    assert "PEP 574" in pickle_c.read_text()
    assert pickle_py.stat().st_mtime_ns == before


def test_conflicting_patch_is_named_with_its_hunk(applied):
    patch = applied["ws"] / "patches" / "3.7" / \
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch"
    patch.write_text(patch.read_text().replace(
        "-static int highest_protocol = 4;", "-static int highest_protocol = 3;"))
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 1, "0002-bpo-2-Teach-the-accelerator-protocol-5.patch "
                       "does not apply to CPython 3.7.3 (source base): hunk #1 "
                       "of Modules/_pickle.c")
    # The work tree still holds the last good state.
    assert "= 5;" in (applied["src"] / "Modules" / "_pickle.c").read_text()


def test_corrupt_patch(applied):
    patch = applied["ws"] / "patches" / "3.7" / \
        "0001-bpo-1-Raise-the-highest-protocol.patch"
    text = patch.read_text()
    patch.write_text(text[:text.index("@@")] + "@@ -1,3 +1,3 @@\n garbage\n")
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 1, "0001-bpo-1-Raise-the-highest-protocol.patch")


def test_not_a_patch(applied):
    patch = applied["ws"] / "patches" / "3.7" / \
        "0001-bpo-1-Raise-the-highest-protocol.patch"
    patch.write_text("this is not a mail\n")
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "not a git format-patch file")


def test_missing_added_file(applied):
    (applied["ws"] / applied["news_copy"]).unlink()
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "the workspace has no such file")


def test_series_names_a_missing_patch(applied):
    series = applied["ws"] / "patches" / "3.7" / "series"
    series.write_text(series.read_text() + "0003-bpo-3-Nothing.patch\n")
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "0003-bpo-3-Nothing.patch")


def test_apply_refuses_to_lose_edits(applied):
    src = applied["src"]
    (src / "Lib" / "pickle.py").write_text("edited\n")
    proc = run_tools("apply", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "uncommitted edits")
    assert (src / "Lib" / "pickle.py").read_text() == "edited\n"
    run_tools("apply", "--force", workspace=applied["ws"], cache=applied["cache"],
              check=0)
    assert "HIGHEST_PROTOCOL = 5" in (src / "Lib" / "pickle.py").read_text()


def test_refresh_without_edits_changes_nothing(applied):
    ws = applied["ws"]
    before = {p: p.read_bytes() for p in (ws / "patches" / "3.7").iterdir()}
    news_before = (ws / applied["news_copy"]).read_bytes()
    run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    first = {p: p.read_bytes() for p in (ws / "patches" / "3.7").iterdir()}
    proc = run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    assert "up to date" in proc.stdout
    after = {p: p.read_bytes() for p in (ws / "patches" / "3.7").iterdir()}
    assert first == after
    assert set(first) == set(before)
    assert (ws / applied["news_copy"]).read_bytes() == news_before
    # The refreshed series still applies to the same tree.
    tree = git(applied["src"], "rev-parse", "HEAD^{tree}")
    run_tools("apply", "--force", workspace=ws, cache=applied["cache"], check=0)
    assert git(applied["src"], "rev-parse", "HEAD^{tree}") == tree


def test_refresh_writes_back_an_amended_patch(applied):
    ws, src = applied["ws"], applied["src"]
    (src / "Lib" / "pickle.py").write_text(
        (src / "Lib" / "pickle.py").read_text() + "\n# protocol 5 notes\n")
    git(src, "commit", "-q", "-a", "--fixup", "HEAD~1")
    git(src, "-c", "sequence.editor=true", "rebase", "-q", "-i", "--autosquash",
        "refs/zerocopy/base")
    run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    patch = (ws / "patches" / "3.7" /
             "0001-bpo-1-Raise-the-highest-protocol.patch").read_text()
    assert "+# protocol 5 notes" in patch
    # A fresh apply of the refreshed series reproduces the same tree.
    tree_before = git(src, "rev-parse", "HEAD^{tree}")
    run_tools("apply", "--force", workspace=ws, cache=applied["cache"], check=0)
    assert git(src, "rev-parse", "HEAD^{tree}") == tree_before


def test_refresh_adds_a_patch_with_a_new_file(applied):
    ws, src = applied["ws"], applied["src"]
    (src / "Lib" / "test").mkdir(parents=True)
    (src / "Lib" / "test" / "test_new.py").write_text("assert True\n")
    (src / "Lib" / "pickle.py").write_text(
        (src / "Lib" / "pickle.py").read_text().replace("DEFAULT_PROTOCOL = 3",
                                                        "DEFAULT_PROTOCOL = 4"))
    git(src, "add", "-A")
    git(src, "commit", "-qm", "bpo-3: Default to protocol 4\n\nBecause.")
    proc = run_tools("refresh", workspace=ws, cache=applied["cache"], check=0)
    assert "0003-bpo-3-Default-to-protocol-4.patch" in proc.stdout
    series = (ws / "patches" / "3.7" / "series").read_text()
    # The series only lists the patch; the patch carries the file it adds
    # (diffstat and diff), and new-files/3.7/ holds a copy of it.
    assert series.endswith("0002-bpo-2-Teach-the-accelerator-protocol-5.patch"
                           "\n0003-bpo-3-Default-to-protocol-4.patch\n")
    assert "Lib/test/test_new.py" not in series
    assert (ws / "new-files" / "3.7" / "Lib" / "test" / "test_new.py"
            ).read_text() == "assert True\n"
    assert not (ws / "Lib").exists()
    patch = (ws / "patches" / "3.7" /
             "0003-bpo-3-Default-to-protocol-4.patch").read_text()
    stat, diff = patch.split("\n---\n", 1)[1].split("\ndiff --git ", 1)
    assert " Lib/test/test_new.py | 1 +" in stat
    assert "2 files changed, 2 insertions(+), 1 deletion(-)" in stat
    assert "create mode 100644 Lib/test/test_new.py" in stat
    assert "+++ b/Lib/test/test_new.py\n@@ -0,0 +1 @@\n+assert True\n" in diff


def test_refresh_refuses_uncommitted_edits(applied):
    (applied["src"] / "Lib" / "pickle.py").write_text("edited\n")
    proc = run_tools("refresh", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "uncommitted edits")


def test_refresh_refuses_when_patches_moved_on(applied):
    patch = applied["ws"] / "patches" / "3.7" / \
        "0001-bpo-1-Raise-the-highest-protocol.patch"
    patch.write_text(patch.read_text().replace("Protocol 5 exists now.",
                                               "Protocol 5 exists."))
    proc = run_tools("refresh", workspace=applied["ws"], cache=applied["cache"])
    assert_clean_error(proc, 2, "changed since the last apply")


def test_installed_kind_skips_what_it_lacks(applied, tmp_path):
    from tools.model import basestore, tree as apply_mod
    from tools.model.workspace import LINES, Workspace
    ws = Workspace(applied["ws"], applied["cache"])
    line = LINES["3.7"]
    # An "installed" base has only Lib/.
    staged = tmp_path / "installed-tree"
    (staged / "Lib").mkdir(parents=True)
    (staged / "Lib" / "pickle.py").write_text(
        (applied["tree"] / "Lib" / "pickle.py").read_text())
    basestore.install(ws, line, "installed", staged, {
        "version": "3.7.16", "origin": "test", "missing": []})
    result = apply_mod.apply_series(ws, line, kind="installed")
    assert result["skipped"] == {
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch": ["Modules/_pickle.c"]}
    src = Path(result["src"])
    assert "HIGHEST_PROTOCOL = 5" in (src / "Lib" / "pickle.py").read_text()
    assert not (src / "Modules" / "_pickle.c").exists()


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())}


def test_refresh_on_installed_base_refuses_and_keeps_patches(applied, tmp_path):
    # An installed base lacks the C sources: apply skips their hunks, and
    # a refresh from that tree would drop them from patches/.
    ws, cache = applied["ws"], applied["cache"]
    staged = tmp_path / "installed-tree"
    (staged / "Lib").mkdir(parents=True)
    (staged / "Lib" / "pickle.py").write_text(
        (applied["tree"] / "Lib" / "pickle.py").read_text())
    from tools.model import basestore
    from tools.model.workspace import LINES, Workspace
    basestore.install(Workspace(ws, cache), LINES["3.7"], "installed", staged,
                      {"version": "3.7.16", "origin": "test", "missing": []})
    before = snapshot(ws / "patches" / "3.7")
    run_tools("apply", "--kind", "installed", workspace=ws, cache=cache,
              check=0)
    proc = run_tools("refresh", workspace=ws, cache=cache)
    assert_clean_error(proc, 2, "refusing to refresh from the installed base "
                       "(CPython 3.7.16)")
    assert "base import PATH" in proc.stderr
    assert snapshot(ws / "patches" / "3.7") == before


def test_refresh_on_another_release_refuses(synthetic):
    # A source tree of another 3.7 release: the hunks apply (with fuzz if
    # need be), but refreshing would retarget the series at that release.
    from conftest import make_source_tree
    ws, cache = synthetic["ws"], synthetic["cache"]
    other = make_source_tree(synthetic["tmp"] / "cpython-3.7.17", "3.7.17")
    run_tools("base", "import", other, workspace=ws, cache=cache, check=0)
    before = snapshot(ws / "patches" / "3.7")
    run_tools("apply", workspace=ws, cache=cache, check=0)
    proc = run_tools("refresh", workspace=ws, cache=cache)
    assert_clean_error(proc, 2, "refusing to refresh from CPython 3.7.17")
    assert snapshot(ws / "patches" / "3.7") == before
