"""`tools check` on synthetic series against a stand-in tree that builds.

The stand-in CPython tree has a configure script that writes a Makefile into
the (out-of-tree) build directory; make compiles Modules/_pickle.c with the
C compiler and writes a `python` script that runs the interpreter of these
tests on the tree's Lib/, where Lib/test/__main__.py plays regrtest.  So a
patch can break the build (a C syntax error) or the tests (a wrong
Lib/pickle.py) in a second, without compiling CPython.
"""

import sys
import textwrap
from pathlib import Path

import pytest

from conftest import (PICKLE_C, PICKLE_PY, assert_clean_error, format_patch,
                      make_source_tree, run_tools, write_copies)

CONFIGURE = textwrap.dedent('''\
    #!/bin/sh
    # Stand-in for CPython's configure: a Makefile in the build directory.
    srcdir=$(cd "$(dirname "$0")" && pwd)
    sed "s|@srcdir@|$srcdir|g" "$srcdir/Makefile.pre.in" > Makefile
    echo "configured for $srcdir"
    ''')

MAKEFILE = textwrap.dedent('''\
    srcdir = @srcdir@
    all: python
    _pickle.o: $(srcdir)/Modules/_pickle.c
    \tcc -c -o _pickle.o $(srcdir)/Modules/_pickle.c
    python: _pickle.o
    \tprintf '#!/bin/sh\\nPYTHONPATH=$(srcdir)/Lib exec @host@ "$$@"\\n' > python
    \tchmod +x python
    ''').replace("@host@", sys.executable)

REGRTEST = textwrap.dedent('''\
    """Stand-in for regrtest: run the named test modules, report failures."""
    import importlib
    import sys
    import unittest

    failed = []
    for name in sys.argv[1:]:
        module = importlib.import_module("test." + name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        if not unittest.TextTestRunner().run(suite).wasSuccessful():
            failed.append(name)
    if failed:
        print("%d test%s failed:" % (len(failed), "s" if len(failed) > 1 else ""))
        print("    " + " ".join(failed))
        sys.exit(2)
    print("Tests result: SUCCESS")
    ''')

TEST_PICKLE = textwrap.dedent('''\
    import pickle
    import unittest


    class ProtocolTests(unittest.TestCase):
        def test_default_below_highest(self):
            self.assertLessEqual(pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL)

        def test_dumps(self):
            self.assertEqual(pickle.dumps(7), b"7")
    ''')

TEST_PICKLEBUFFER = textwrap.dedent('''\
    import unittest


    class Exists(unittest.TestCase):
        def test_nothing_yet(self):
            self.assertTrue(True)
    ''')


def buildable_tree(root):
    """A stand-in 3.7.3 tree whose configure and make produce a python."""
    tree = make_source_tree(root, extra={
        "configure": CONFIGURE,
        "Makefile.pre.in": MAKEFILE,
        "Lib/test/__init__.py": "",
        "Lib/test/__main__.py": REGRTEST,
        "Lib/test/test_pickle.py": TEST_PICKLE,
    })
    (tree / "configure").chmod(0o755)
    return tree


def news_path(issue, section="Library"):
    return ("Misc/NEWS.d/next/%s/2026-01-0%d-00-00-00.bpo-%d.abc%03d.rst"
            % (section, issue % 9 + 1, issue, issue))


GOOD_PATCHES = [
    {"subject": "bpo-1: Raise the highest protocol",
     "body": "Protocol 5 exists now, so pickle must offer it.",
     "edits": {"Lib/pickle.py": PICKLE_PY.replace("HIGHEST_PROTOCOL = 4",
                                                  "HIGHEST_PROTOCOL = 5")}},
    {"subject": "bpo-2: Teach the accelerator protocol 5",
     "body": "The C side must agree with the Python side.",
     "edits": {"Modules/_pickle.c": PICKLE_C.replace("= 4;", "= 5;")}},
    {"subject": "bpo-3: Default to protocol 4",
     "body": "Every supported version reads protocol 4.",
     "edits": {"Lib/pickle.py": PICKLE_PY.replace(
         "HIGHEST_PROTOCOL = 4", "HIGHEST_PROTOCOL = 5").replace(
         "DEFAULT_PROTOCOL = 3", "DEFAULT_PROTOCOL = 4")},
     "adds": {"Lib/test/test_picklebuffer.py": TEST_PICKLEBUFFER}},
]


def make_workspace(tmp_path, patches=GOOD_PATCHES, tree=None):
    """A workspace whose series is PATCHES, each dict with subject, body,
    edits ({path: full new text}), and optionally adds ({path: text}, files
    the patch adds, copied to new-files/3.7/), news (text of its NEWS entry;
    None for none) and news_name (the entry's path)."""
    tree = tree or buildable_tree(tmp_path / "cpython")
    ws = tmp_path / "ws"
    series_dir = ws / "patches" / "3.7"
    series_dir.mkdir(parents=True)
    lines = []
    for number, spec in enumerate(patches, 1):
        adds = dict(spec.get("adds", {}))
        entry = spec.get("news", "Say what changed for users, issue %d."
                         % number)
        if entry is not None:
            adds[spec.get("news_name", news_path(number))] = entry + "\n"
        text = format_patch(tree, spec["edits"], spec["subject"], spec["body"],
                            adds=adds, number=number)
        slug = spec["subject"].replace(":", "").replace(" ", "-")
        name = "%04d-%s.patch" % (number, slug)
        (series_dir / name).write_text(text)
        lines.append(name + "\n")
        write_copies(ws, adds)
    (series_dir / "series").write_text("".join(lines))
    return {"tree": tree, "ws": ws, "cache": tmp_path / "cache",
            "series_dir": series_dir}


def import_base(spec):
    run_tools("base", "import", spec["tree"], workspace=spec["ws"],
              cache=spec["cache"], check=0)


def check(spec, *args):
    return run_tools("check", "-j1", *args, workspace=spec["ws"],
                     cache=spec["cache"])


@pytest.fixture
def blurb_installed():
    pytest.importorskip("blurb", reason="blurb validates NEWS entries: "
                        "pip install -r requirements/dev.txt")


def test_every_prefix_builds_and_passes(tmp_path, blurb_installed):
    spec = make_workspace(tmp_path)
    import_base(spec)
    proc = check(spec)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout
    for number in (1, 2, 3):
        assert "prefix %d/3" % number in out
    # test_picklebuffer exists from the third patch on only.
    prefix_lines = [l for l in out.splitlines() if l.startswith("prefix ")]
    assert "test_picklebuffer" not in prefix_lines[1]
    assert "test_pickle test_picklebuffer pass" in prefix_lines[2]
    assert "every prefix passes" in out
    check_dir = spec["ws"] / "build" / "3.7" / "check"
    # The main work tree is left alone; the check has its own.
    assert not (spec["ws"] / "build" / "3.7" / "src").exists()
    assert (check_dir / "obj" / "python").exists()
    assert (check_dir / "warnings.json").exists()


def test_second_patch_breaking_the_build_is_named(tmp_path, blurb_installed):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], edits={
        "Modules/_pickle.c": PICKLE_C.replace("= 4;", "= 5")})
    spec = make_workspace(tmp_path, patches)
    import_base(spec)
    proc = check(spec)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "0002-bpo-2-Teach-the-accelerator-protocol-5.patch breaks the " \
        "build (prefix 2/3)" in proc.stderr
    assert "prefix 1/3" in proc.stdout and "build ok" in proc.stdout
    # It stops there: the third prefix is never tried.
    assert "prefix 3/3" not in proc.stdout
    log = spec["ws"] / "build" / "3.7" / "check" / "logs" / "prefix-2-build.log"
    assert "error" in log.read_text()


def test_second_patch_breaking_the_tests_is_named(tmp_path, blurb_installed):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], edits={
        "Lib/pickle.py": PICKLE_PY.replace("HIGHEST_PROTOCOL = 4",
                                           "HIGHEST_PROTOCOL = 2")},
        subject="bpo-2: Lower the highest protocol")
    spec = make_workspace(tmp_path, patches)
    import_base(spec)
    proc = check(spec)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "0002-bpo-2-Lower-the-highest-protocol.patch breaks the tests " \
        "(prefix 2/3): test_pickle failed" in proc.stderr
    assert "prefix 3/3" not in proc.stdout


def test_patch_without_news_is_named(tmp_path, blurb_installed):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], news=None)
    spec = make_workspace(tmp_path, patches)
    import_base(spec)
    proc = check(spec, "--fast")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FAIL 0002-bpo-2-Teach-the-accelerator-protocol-5.patch: adds no " \
        "NEWS entry" in proc.stdout
    assert "no valid NEWS entry in 0002-bpo-2-Teach-the-accelerator-" \
        "protocol-5.patch" in proc.stderr
    assert "ok   0001-" in proc.stdout and "ok   0003-" in proc.stdout
    # --fast builds nothing.
    assert not (spec["ws"] / "build" / "3.7" / "check" / "obj").exists()


@pytest.mark.parametrize("name, text, complaint", [
    (news_path(2), "bpo-2: Say it twice.", "can't start with 'bpo-'"),
    (news_path(2), "", "must not be empty"),
    (news_path(2, section="Nonsense"), "Fine text.", "Unknown section"),
    ("Misc/NEWS.d/next/Library/2026-01-01.rst", "Fine text.", "blurb rejects"),
])
def test_news_entry_blurb_rejects_is_named(tmp_path, blurb_installed, name,
                                            text, complaint):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], news=text, news_name=name)
    spec = make_workspace(tmp_path, patches)
    proc = check(spec, "--fast")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    failing = [l for l in proc.stdout.splitlines() if "FAIL" in l]
    assert len(failing) == 1, proc.stdout
    assert failing[0].startswith("  FAIL 0002-bpo-2-")
    assert name in failing[0] and complaint in failing[0]


def test_missing_blurb_is_said_clearly(tmp_path):
    spec = make_workspace(tmp_path)
    # A package named blurb without blurb's parser stands in for none.
    fake = tmp_path / "fake-site"
    (fake / "blurb").mkdir(parents=True)
    (fake / "blurb" / "__init__.py").write_text("")
    proc = run_tools("check", "--fast", workspace=spec["ws"],
                     cache=spec["cache"], env={"PYTHONPATH": str(fake)})
    assert_clean_error(proc, 2, "blurb is not installed")
    assert "requirements/dev.txt" in proc.stderr


def install_fake_installed_base(spec, tmp_path):
    """An installed 3.7.16 base with only Lib/pickle.py, and no source base."""
    from tools.model import basestore
    from tools.model.workspace import LINES, Workspace
    ws = Workspace(spec["ws"], spec["cache"])
    staged = tmp_path / "installed-tree"
    (staged / "Lib").mkdir(parents=True)
    (staged / "Lib" / "pickle.py").write_text(PICKLE_PY)
    basestore.install(ws, LINES["3.7"], "installed", staged, {
        "version": "3.7.16", "origin": "test", "missing": [],
        "executable": sys.executable})


def test_only_an_installed_base_says_what_it_skips(tmp_path, blurb_installed):
    spec = make_workspace(tmp_path)
    install_fake_installed_base(spec, tmp_path)
    proc = check(spec)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "SKIPPED: building CPython and running test_pickle" in proc.stdout
    assert "python3 -m tools base download" in proc.stdout
    assert "prefix 2/3" in proc.stdout
    assert "not in that base: Modules/_pickle.c" in proc.stdout
    assert "1 Lib file(s) compile" in proc.stdout


def test_installed_base_catches_a_syntax_error(tmp_path, blurb_installed):
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], edits={
        "Lib/pickle.py": PICKLE_PY.replace("def dumps(obj):", "def dumps(obj)")},
        subject="bpo-2: Break pickle")
    spec = make_workspace(tmp_path, patches)
    install_fake_installed_base(spec, tmp_path)
    proc = check(spec)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "0002-bpo-2-Break-pickle.patch breaks Lib/ (prefix 2/3)" \
        in proc.stderr


def test_no_base(tmp_path, blurb_installed):
    spec = make_workspace(tmp_path)
    proc = check(spec)
    assert_clean_error(proc, 2, "no CPython 3.7 base imported")


def test_docs_need_a_source_base(tmp_path, blurb_installed):
    spec = make_workspace(tmp_path)
    proc = check(spec, "--docs", "--fast")
    assert_clean_error(proc, 2, "--docs needs a source base")


def test_failed_extension_modules_break_the_build(tmp_path):
    from tools.check import failed_extensions
    log = Path(tmp_path, "make.log")
    log.write_text("Python build finished successfully!\n"
                   "The necessary bits to build these optional modules were "
                   "not found:\n_dbm                  _gdbm\n\n"
                   "Failed to build these modules:\n_pickle\n\n")
    assert failed_extensions(log) == ["_pickle"]
    log.write_text("Python build finished successfully!\n"
                   "The necessary bits to build these optional modules were "
                   "not found:\n_dbm                  _gdbm\n\n")
    assert failed_extensions(log) == []


FAKE_SPHINX = textwrap.dedent('''\
    """Stand-in for sphinx-build: a warning for every line saying BROKEN."""
    import os
    import sys

    args = sys.argv[1:]
    warnings = args[args.index("-w") + 1]
    with open(warnings, "w") as out:
        for root, dirs, files in os.walk("."):
            dirs[:] = [d for d in dirs if d != "build"]
            for name in sorted(files):
                if not name.endswith(".rst"):
                    continue
                path = os.path.abspath(os.path.join(root, name))
                with open(path) as f:
                    for number, text in enumerate(f, 1):
                        if "BROKEN" in text:
                            out.write("%s:%d: WARNING: broken markup\\n"
                                      % (path, number))
    ''')


def fake_docs_venv(spec):
    """build/3.7/docs-venv as tools check makes it, with stand-in tools."""
    import hashlib
    requirements = spec["ws"] / "requirements" / "docs-py37.txt"
    requirements.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text("Sphinx==0.0\n")
    venv = spec["ws"] / "build" / "3.7" / "docs-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / "sphinx").mkdir(parents=True)
    (venv / "lib" / "sphinx" / "__init__.py").write_text(
        "__version__ = '0.0-stand-in'\n")
    (venv / "bin" / "python").write_text(
        "#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n" % (venv / "lib",
                                                      sys.executable))
    (venv / "bin" / "sphinx-build").write_text(
        "#!%s\n" % sys.executable + FAKE_SPHINX)
    for name in ("python", "sphinx-build"):
        (venv / "bin" / name).chmod(0o755)
    (venv / "zerocopy-requirements.sha256").write_text(hashlib.sha256(
        requirements.read_bytes() + sys.executable.encode()).hexdigest())


DOC_MAKEFILE = textwrap.dedent('''\
    SPHINXBUILD = sphinx-build
    SPHINXOPTS =
    html:
    \t$(SPHINXBUILD) -b html $(SPHINXOPTS) . build/html
    ''')


def test_docs_warnings_in_touched_files_fail(tmp_path, blurb_installed):
    tree = buildable_tree(tmp_path / "cpython")
    for path, text in {"Doc/Makefile": DOC_MAKEFILE,
                       "Doc/tools/rstlint.py": "print('No problems found.')\n",
                       "Doc/library/pickle.rst": "pickle\n======\n",
                       "Doc/library/other.rst": "BROKEN upstream\n"}.items():
        Path(tree, path).parent.mkdir(parents=True, exist_ok=True)
        Path(tree, path).write_text(text)
    patches = list(GOOD_PATCHES)
    patches[1] = dict(patches[1], edits={
        "Doc/library/pickle.rst": "pickle\n======\n\nBROKEN :meth:`x\n"})
    spec = make_workspace(tmp_path, patches, tree=tree)
    import_base(spec)
    fake_docs_venv(spec)
    proc = check(spec, "--fast", "--docs", "--docs-python", sys.executable)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    failing = [l for l in proc.stdout.splitlines() if "FAIL" in l]
    assert len(failing) == 1, proc.stdout
    assert failing[0].endswith(
        "/build/3.7/check/src/Doc/library/pickle.rst:4: WARNING: broken markup")
    # The upstream page's warning is counted, not held against the series.
    assert "1 warning(s) in the 1 .rst file(s) the series touches " \
        "(Doc/library/pickle.rst), 1 elsewhere" in proc.stdout
    assert "Sphinx 0.0-stand-in" in proc.stdout
    assert "1 docs problem(s)" in proc.stderr
    # Fixed, the same check passes.
    patch = sorted(spec["series_dir"].glob("0002-*.patch"))[0]
    patch.write_text(patch.read_text().replace("+BROKEN :meth:`x",
                                               "+Fine :meth:`x`"))
    proc = check(spec, "--fast", "--docs", "--docs-python", sys.executable)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "0 warning(s) in the 1 .rst file(s)" in proc.stdout


def test_patch_that_does_not_apply_is_named(tmp_path, blurb_installed):
    spec = make_workspace(tmp_path)
    import_base(spec)
    patch = sorted(spec["series_dir"].glob("0002-*.patch"))[0]
    patch.write_text(patch.read_text().replace(
        "-static int highest_protocol = 4;", "-static int highest_protocol = 3;"))
    proc = check(spec)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "0002-bpo-2-Teach-the-accelerator-protocol-5.patch does not apply " \
        "to CPython 3.7.3 (source base): hunk #1 of Modules/_pickle.c" \
        in proc.stderr
    assert "(prefix 2/3)" in proc.stderr
    assert "prefix 1/3" in proc.stdout and "prefix 3/3" not in proc.stdout


def test_one_check_at_a_time(tmp_path, blurb_installed):
    import fcntl
    spec = make_workspace(tmp_path)
    check_dir = spec["ws"] / "build" / "3.7" / "check"
    check_dir.mkdir(parents=True)
    with open(check_dir / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = check(spec, "--fast")
        assert_clean_error(proc, 2, "another `tools check` of 3.7 is running")
    proc = check(spec, "--fast")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
