"""`tools patchcheck` on synthetic series."""

import json
import re
import shutil
import textwrap

import pytest

from conftest import PICKLE_C, PICKLE_PY, assert_clean_error, run_tools
from test_tools_check import (GOOD_PATCHES, buildable_tree, import_base,
                              make_workspace)

PICKLE_RST = textwrap.dedent("""\
    :mod:`pickle` --- Python object serialization
    =============================================

    .. function:: dumps(obj)

       Return the pickled representation of *obj*.
    """)

API_H = textwrap.dedent("""\
    #ifndef Py_PICKLEAPI_H
    #define Py_PICKLEAPI_H
    PyAPI_FUNC(int) PyPickle_Existing(void);
    #endif
    """)


def base_patchcheck():
    """CPython 3.7's own Tools/scripts/patchcheck.py and the scripts it
    imports, from the imported 3.7 base of this machine."""
    from tools.model.workspace import cache_root
    scripts = cache_root() / "bases" / "3.7" / "source" / "tree" / "Tools" / \
        "scripts"
    if not (scripts / "patchcheck.py").is_file():
        pytest.skip("no CPython 3.7 source base to take Tools/scripts/"
                    "patchcheck.py from: `python3 -m tools base download` "
                    "enables these tests")
    return {name: (scripts / name).read_text()
            for name in ("patchcheck.py", "reindent.py", "untabify.py")}


@pytest.fixture
def tree(tmp_path):
    """The buildable stand-in tree with a doc page, a C API header and
    CPython's own patchcheck."""
    tree = buildable_tree(tmp_path / "cpython")
    for name, text in base_patchcheck().items():
        (tree / "Tools" / "scripts").mkdir(parents=True, exist_ok=True)
        (tree / "Tools" / "scripts" / name).write_text(text)
    (tree / "Doc" / "library").mkdir(parents=True)
    (tree / "Doc" / "library" / "pickle.rst").write_text(PICKLE_RST)
    (tree / "Include" / "pickleapi.h").write_text(API_H)
    return tree


def patchcheck(spec, *args):
    if not (spec["cache"] / "bases").exists():
        import_base(spec)
    return run_tools("patchcheck", *args, workspace=spec["ws"],
                     cache=spec["cache"])


def with_second(tmp_path, tree, **changes):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], **changes)
    return make_workspace(tmp_path, patches, tree=tree)


def fail_lines(proc):
    return [line.strip() for line in proc.stdout.splitlines()
            if line.strip().startswith("FAIL")]


@pytest.fixture
def blurb_installed():
    pytest.importorskip("blurb")


def test_good_series_passes(tmp_path, tree, blurb_installed):
    spec = make_workspace(tmp_path, tree=tree)
    proc = patchcheck(spec)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert fail_lines(proc) == []
    assert "patchcheck: no problems" in proc.stdout
    # Without a build of the series, the warnings check says so.
    assert "SKIPPED compiler warnings" in proc.stdout
    assert "python3 -m tools check" in proc.stdout


@pytest.mark.parametrize("new_text, complaint", [
    (PICKLE_C.replace("= 4;", "= 5;   "), "git diff --check: "
     "Modules/_pickle.c:2: trailing whitespace."),
    (PICKLE_C.replace("static", "\tstatic"), "Tools/scripts/patchcheck.py: "
     "C file whitespace to fix in Modules/_pickle.c"),
])
def test_c_whitespace(tmp_path, tree, new_text, complaint):
    spec = with_second(tmp_path, tree, edits={"Modules/_pickle.c": new_text})
    proc = patchcheck(spec)
    assert proc.returncode == 1
    failing = fail_lines(proc)
    assert len(failing) == 1 and complaint in failing[0], proc.stdout
    assert "problems in 0002-bpo-2-Teach-the-accelerator-protocol-5.patch" \
        in proc.stderr


def test_python_indentation_tabs_and_added_files(tmp_path, tree):
    edited = PICKLE_PY.replace("    return repr", "\treturn repr")
    spec = with_second(tmp_path, tree, edits={"Lib/pickle.py": edited},
                       adds={"Lib/test/test_extra.py": "x = 1  \n\n"})
    proc = patchcheck(spec)
    assert proc.returncode == 1
    text = "\n".join(fail_lines(proc))
    # CPython's reindent, through its patchcheck, and git diff --check.
    assert "Python file whitespace to fix in Lib/pickle.py, " \
        "Lib/test/test_extra.py" in text
    assert "Lib/test/test_extra.py:1: trailing whitespace." in text
    assert "Lib/test/test_extra.py:2: new blank line at EOF." in text


def test_missing_news(tmp_path, tree):
    spec = with_second(tmp_path, tree, news=None)
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert fail_lines(proc) == [
        "FAIL   news       no NEWS entry: add one with `blurb add` "
        "(Misc/NEWS.d/next/<Section>/...rst) and commit it with the patch"]
    assert "0002-bpo-2-Teach-the-accelerator-protocol-5.patch" in proc.stderr


def test_news_for_another_issue(tmp_path, tree, blurb_installed):
    spec = with_second(tmp_path, tree, news_name="Misc/NEWS.d/next/Library/"
                       "2026-01-01-00-00-00.bpo-99.abcdef.rst")
    proc = patchcheck(spec)
    assert proc.returncode == 1
    failing = fail_lines(proc)
    assert len(failing) == 1
    assert "is about bpo-99, the subject about bpo-2" in failing[0]


@pytest.mark.parametrize("subject, body, complaint", [
    ("bpo-2: Teach the accelerator", "", "no body"),
    ("bpo-2: Teach the accelerator", "bpo-2: Teach the accelerator",
     "only repeats the subject"),
])
def test_subject_and_body(tmp_path, tree, subject, body, complaint):
    spec = with_second(tmp_path, tree, subject=subject, body=body,
                       news_name="Misc/NEWS.d/next/Library/"
                       "2026-01-01-00-00-00.bpo-2.abcdef.rst")
    proc = patchcheck(spec)
    assert proc.returncode == 1, proc.stdout
    failing = fail_lines(proc)
    assert any(complaint in line for line in failing), proc.stdout
    assert all("header" in line for line in failing), proc.stdout


def test_placeholder_issue(tmp_path, tree):
    spec = with_second(tmp_path, tree, subject="gh-NNNNN: pickle: teach the "
                       "accelerator protocol 5")
    proc = patchcheck(spec)
    assert proc.returncode == 1, proc.stdout
    failing = fail_lines(proc)
    assert len(failing) == 1, proc.stdout
    assert failing[0].startswith("FAIL   issue")
    assert "placeholder 'gh-NNNNN'" in failing[0]
    proc = patchcheck(spec, "--waive", "0002:issue")
    assert proc.returncode == 0, proc.stdout


def test_placeholder_news_entry(tmp_path, tree):
    # A plain heading is fine, but a NEWS entry named for the placeholder
    # issue (bpo-0, tools/model/news.py) still waits for the real issue.
    spec = with_second(tmp_path, tree, subject="pickle: teach the accelerator "
                       "protocol 5", news_name="Misc/NEWS.d/next/Library/"
                       "2026-01-02-00-00-00.bpo-0.abc002.rst")
    proc = patchcheck(spec)
    assert proc.returncode == 1, proc.stdout
    failing = fail_lines(proc)
    assert len(failing) == 1, proc.stdout
    assert failing[0].startswith("FAIL   issue")
    assert ".bpo-0." in failing[0] and "(bpo-0)" in failing[0]
    proc = patchcheck(spec, "--waive", "0002:issue")
    assert proc.returncode == 0, proc.stdout


NEW_API = PICKLE_PY + textwrap.dedent('''\


    def dumps_fast(obj):
        return dumps(obj)
    ''')


def test_new_python_api_needs_docs(tmp_path, tree):
    spec = with_second(tmp_path, tree, edits={"Lib/pickle.py": NEW_API})
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert fail_lines(proc) == [
        "FAIL   docs       changes public API and nothing under Doc/: "
        "pickle.dumps_fast (new)"]
    # --waive accepts exactly that problem, and still shows it.
    proc = patchcheck(spec, "--waive", "0002:docs")
    assert proc.returncode == 0, proc.stdout
    assert "waived docs" in " ".join(proc.stdout.split())
    proc = patchcheck(spec, "--waive", "0001:docs")
    assert proc.returncode == 1
    assert "--waive 0001:docs matches no problem" in proc.stdout


def test_new_python_api_with_docs(tmp_path, tree):
    spec = with_second(tmp_path, tree, edits={
        "Lib/pickle.py": NEW_API,
        "Doc/library/pickle.rst": PICKLE_RST + "\n.. function:: dumps_fast(obj)"
                                               "\n\n   Faster.\n"})
    proc = patchcheck(spec)
    assert proc.returncode == 0, proc.stdout
    assert "Doc/ changed with the API: pickle.dumps_fast (new)" in proc.stdout


def test_api_documented_by_a_later_patch(tmp_path, tree):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], edits={"Lib/pickle.py": NEW_API})
    patches[2] = dict(patches[2], edits={
        "Doc/library/pickle.rst": PICKLE_RST + "\n.. function:: "
                                               "dumps_fast(obj)\n"})
    spec = make_workspace(tmp_path, patches, tree=tree)
    proc = patchcheck(spec)
    assert proc.returncode == 0, proc.stdout
    assert "pickle.dumps_fast is documented later, by 0003-" in proc.stdout


def test_changed_signature_and_all_and_c_api(tmp_path, tree):
    edited = PICKLE_PY.replace("def dumps(obj):",
                               "def dumps(obj, buffer_callback=None):")
    edited += '\n__all__ = ["dumps"]\n__all__.append("PickleBuffer")\n'
    header = API_H.replace("#endif", "PyAPI_FUNC(int) PyPickle_New(void);\n"
                           "PyAPI_FUNC(int) _PyPickle_Private(void);\n"
                           "#define PyPickle_CHECK(op) (op != NULL)\n#endif")
    patches = [GOOD_PATCHES[0], dict(GOOD_PATCHES[1], edits={
        "Lib/pickle.py": edited, "Include/pickleapi.h": header})]
    spec = make_workspace(tmp_path, patches, tree=tree)
    proc = patchcheck(spec)
    assert proc.returncode == 1
    failing = fail_lines(proc)
    assert len(failing) == 1
    for found in ("pickle.dumps (changed signature)",
                  "pickle.PickleBuffer (added to pickle.__all__)",
                  "PyPickle_New (new C API)", "PyPickle_CHECK (new C API)"):
        assert found in failing[0]
    assert "_PyPickle_Private" not in failing[0]
    assert "PyPickle_Existing" not in failing[0]


def test_configure(tmp_path, tree):
    (tree / "configure.ac").write_text("AC_INIT\n")
    spec = with_second(tmp_path, tree, edits={
        "configure.ac": "AC_INIT\nAC_CHECK_FUNCS(memfd)\n"})
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert fail_lines(proc) == [
        "FAIL   configure  Tools/scripts/patchcheck.py: configure.ac changes "
        "but configure was not regenerated (autoreconf)"]


def test_without_a_base_the_commit_checks_skip_loudly(tmp_path, tree):
    spec = make_workspace(tmp_path, tree=tree)
    proc = run_tools("patchcheck", workspace=spec["ws"], cache=spec["cache"])
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "SKIPPED whitespace, configure and docs of each commit: no base " \
        "imported; `python3 -m tools base download` enables it" in proc.stdout


def test_not_a_mail(tmp_path, tree):
    spec = make_workspace(tmp_path, tree=tree)
    import_base(spec)
    first = sorted(spec["series_dir"].glob("0001-*.patch"))[0]
    first.write_text("diff --git a/x b/x\n")
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert any("not a git format-patch file" in line
               for line in fail_lines(proc))


def test_bad_waiver_syntax(tmp_path, tree):
    spec = make_workspace(tmp_path, tree=tree)
    proc = patchcheck(spec, "--waive", "0002")
    assert_clean_error(proc, 2, "is not NNNN:CHECK")


def test_compiler_warnings_of_the_check_build(tmp_path, tree, blurb_installed):
    spec = with_second(tmp_path, tree, edits={
        "Modules/_pickle.c": PICKLE_C + '#warning "protocol 5 is new"\n'})
    import_base(spec)
    run_tools("check", "-j1", workspace=spec["ws"], cache=spec["cache"],
              check=0)
    record = json.loads((spec["ws"] / "build" / "3.7" / "check" /
                         "warnings.json").read_text())
    assert len(record["warnings"]) == 1
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert "1 compiler warning(s) in the series' files" in proc.stdout
    assert "protocol 5 is new" in proc.stdout
    # A record of an older state of the series is not used.
    patch = sorted(spec["series_dir"].glob("0001-*.patch"))[0]
    patch.write_text(patch.read_text().replace("pickle must offer it.",
                                               "pickle must offer it now."))
    proc = patchcheck(spec)
    assert "SKIPPED compiler warnings" in proc.stdout


def test_placeholder_subject_and_entry_pass_blurb(tmp_path, tree,
                                                  blurb_installed):
    """The one placeholder spelling: patchcheck holds both the subject and
    the NEWS entry as not ready, and blurb reads the entry all the same."""
    from tools.model import news
    assert news.PLACEHOLDER == "bpo-0"
    spec = with_second(tmp_path, tree, subject="bpo-0: pickle: teach the "
                       "accelerator protocol 5", news_name="Misc/NEWS.d/next/"
                       "Library/2026-01-02-00-00-00.bpo-0.abc002.rst")
    proc = patchcheck(spec)
    assert proc.returncode == 1, proc.stdout
    failing = fail_lines(proc)
    assert len(failing) == 2, proc.stdout
    assert all(line.startswith("FAIL   issue") for line in failing)
    assert "placeholder 'bpo-0'" in failing[0]
    # Accepted by blurb, about the same (placeholder) issue as the subject.
    assert "ok     news       Misc/NEWS.d/next/Library/2026-01-02-00-00-00." \
        "bpo-0.abc002.rst (blurb: Library, bpo-0)" in proc.stdout
    proc = patchcheck(spec, "--waive", "0002:issue")
    assert proc.returncode == 0, proc.stdout


def test_copies_check(tmp_path, tree):
    spec = make_workspace(tmp_path, tree=tree)
    proc = patchcheck(spec)
    assert "ok     copies     new-files/3.7 holds exactly the 4 file(s) the " \
        "patches add" in proc.stdout
    copy = spec["ws"] / "new-files" / "3.7" / "Lib" / "test" / \
        "test_picklebuffer.py"
    copy.write_text("edited\n")
    proc = patchcheck(spec)
    assert proc.returncode == 1
    assert fail_lines(proc) == [
        "FAIL   copies     new-files/3.7/Lib/test/test_picklebuffer.py differs "
        "from the file 0003-bpo-3-Default-to-protocol-4.patch adds: a copy is "
        "not the source; edit it in build/3.7/src, commit, and run `python3 -m "
        "tools refresh` (or undo the edit with `git checkout -- "
        "new-files/3.7/Lib/test/test_picklebuffer.py`)"]


def hook_waivers(hook_id):
    """The --waive arguments of a patchcheck hook of .pre-commit-config.yaml,
    which are those the series needs."""
    from conftest import REPO
    config = (REPO / ".pre-commit-config.yaml").read_text()
    hook = config.split("id: %s\n" % hook_id, 1)[1].split("- id:", 1)[0]
    waivers = []
    for waiver in re.findall(r"--waive (\S+?);?(?=\s)", hook):
        waivers += ["--waive", waiver]
    return waivers


def test_the_overlay_patches_are_checked(tmp_path):
    """patchcheck --base 3.7 of the real series also applies the overlay's
    downstream patches after it, and refuses their whitespace errors."""
    from conftest import REPO
    from tools.model import basestore
    from tools.model.workspace import LINES, Workspace
    if basestore.load(Workspace(), LINES["3.7"], "source") is None:
        pytest.skip("no CPython 3.7 source base: `python3 -m tools base "
                    "download` enables this test")
    ws = tmp_path / "ws"
    for folder in ("patches", "new-files"):
        shutil.copytree(REPO / folder, ws / folder)
    waivers = hook_waivers("patchcheck-3.7")
    assert waivers, "no --waive in the patchcheck-3.7 hook"
    proc = run_tools("patchcheck", *waivers, workspace=ws, check=0)
    assert "ok     downstream patches/3.7-overlay: 0001-" in proc.stdout
    patch = sorted((ws / "patches" / "3.7-overlay").glob("0001-*.patch"))[0]
    patch.write_text(patch.read_text().replace(
        "+    from _picklebuffer import PickleBuffer\n",
        "+    from _picklebuffer import PickleBuffer  \n"))
    proc = run_tools("patchcheck", *waivers, workspace=ws)
    assert proc.returncode == 1
    failing = fail_lines(proc)
    assert len(failing) == 1, proc.stdout
    assert failing[0].startswith("FAIL   downstream %s does not apply to the "
                                 "Lib/ of " % patch.name)
    assert failing[0].endswith(": 1 line adds whitespace errors.")
