"""Shared fixtures: synthetic workspaces for the tools, and the patched
interpreters built by `python3 -m tools build` for the end-to-end tests."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_tools(*args, workspace=None, cache=None, check=None, env=None):
    """Run `python3 -m tools ARGS` as a user would; return the process."""
    command = [sys.executable, "-m", "tools"] + [str(a) for a in args]
    if workspace is not None:
        command += ["--workspace", str(workspace)]
    full_env = dict(os.environ)
    if cache is not None:
        full_env["ZEROCOPY_PICKLE_CACHE"] = str(cache)
    if env:
        full_env.update(env)
    proc = subprocess.run(command, cwd=str(REPO), env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def run_script(python, code):
    """Run CODE in PYTHON; what it prints, as JSON."""
    proc = subprocess.run([str(python), "-c", textwrap.dedent(code)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_clean_error(proc, status, fragment):
    """A user mistake: the given status, one line on stderr, no traceback."""
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


# -- synthetic CPython trees and series ---------------------------------------

PICKLE_PY = textwrap.dedent('''\
    """A stand-in for Lib/pickle.py."""

    HIGHEST_PROTOCOL = 4
    DEFAULT_PROTOCOL = 3


    def dumps(obj):
        return repr(obj).encode()
    ''')

PICKLE_C = textwrap.dedent('''\
    /* A stand-in for Modules/_pickle.c. */
    static int highest_protocol = 4;
    ''')


def make_source_tree(root, version="3.7.3", extra=None):
    files = {
        "Include/patchlevel.h": '#define PY_VERSION "%s"\n' % version,
        "configure": "#!/bin/sh\necho configured\n",
        "Lib/pickle.py": PICKLE_PY,
        "Modules/_pickle.c": PICKLE_C,
        "README.rst": "This is a stand-in CPython %s tree.\n" % version,
    }
    files.update(extra or {})
    for path, text in files.items():
        target = Path(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return Path(root)


def git(repo, *args, **kwargs):
    env = dict(os.environ, GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="t@x",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="t@x",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", "-C", str(repo)] + list(args), env=env,
                          check=True, stdout=subprocess.PIPE, text=True,
                          **kwargs).stdout


def format_patch(tree, edits, subject, body, adds=None, number=1):
    """Make a format-patch file of EDITS ({path: new text}) to TREE; ADDS
    ({path: text}) are files the patch adds, carried by the patch."""
    repo = Path(str(tree) + "-patchrepo")
    if not repo.exists():
        subprocess.run(["cp", "-a", str(tree), str(repo)], check=True)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
    for path, text in dict(edits, **(adds or {})).items():
        Path(repo, path).parent.mkdir(parents=True, exist_ok=True)
        Path(repo, path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", subject + "\n\n" + body)
    return git(repo, "format-patch", "--stdout", "-1", "HEAD", "--zero-commit",
               "--no-signature", "--start-number", str(number))


def write_copies(ws, adds, line="3.7"):
    """The copies of added files that `tools refresh` keeps in new-files/."""
    for path, text in adds.items():
        target = Path(ws, "new-files", line, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.fixture
def synthetic(tmp_path):
    """A workspace with a two-patch series against a stand-in 3.7.3 tree;
    the first patch adds a NEWS entry."""
    tree = make_source_tree(tmp_path / "cpython")
    ws = tmp_path / "ws"
    series_dir = ws / "patches" / "3.7"
    series_dir.mkdir(parents=True)
    news = "Misc/NEWS.d/next/Library/2026-01-01-00-00-00.bpo-1.abcdef.rst"
    adds = {news: "Protocol 5 is the highest protocol.\n"}
    first = format_patch(tree, {"Lib/pickle.py": PICKLE_PY.replace(
        "HIGHEST_PROTOCOL = 4", "HIGHEST_PROTOCOL = 5")},
        "bpo-1: Raise the highest protocol", "Protocol 5 exists now.",
        adds=adds)
    second = format_patch(tree, {"Modules/_pickle.c": PICKLE_C.replace(
        "= 4;", "= 5;")}, "bpo-2: Teach the accelerator protocol 5",
        "The C side follows.", number=2)
    (series_dir / "0001-bpo-1-Raise-the-highest-protocol.patch").write_text(first)
    (series_dir / "0002-bpo-2-Teach-the-accelerator-protocol-5.patch"
     ).write_text(second)
    write_copies(ws, adds)
    (series_dir / "series").write_text(
        "0001-bpo-1-Raise-the-highest-protocol.patch\n"
        "0002-bpo-2-Teach-the-accelerator-protocol-5.patch\n")
    return {"tree": tree, "ws": ws, "cache": tmp_path / "cache",
            "tmp": tmp_path, "news": news,
            "news_copy": "new-files/3.7/" + news}


@pytest.fixture
def applied(synthetic):
    """The synthetic workspace with its base imported and series applied."""
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    run_tools("apply", workspace=synthetic["ws"], cache=synthetic["cache"],
              check=0)
    synthetic["src"] = synthetic["ws"] / "build" / "3.7" / "src"
    return synthetic


# -- the patched interpreters -------------------------------------------------

def interpreter_record(line="3.7", debug=False):
    name = "interpreter-debug.json" if debug else "interpreter.json"
    path = REPO / "build" / line / name
    if not path.exists():
        return None
    return json.loads(path.read_text())


def built_interpreter(line):
    """The record of LINE's patched interpreter; a loud skip naming the
    command that builds it when there is none.  Under CI (which builds
    first) a missing interpreter is a failure, never a skip."""
    record = interpreter_record(line)
    if record is None or not Path(record["python"]).exists():
        command = "python3 -m tools build" + (
            "" if line == "3.7" else " --base " + line)
        message = ("no patched CPython %s interpreter: `%s` enables this test"
                   % (line, command))
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return record


@pytest.fixture(scope="session")
def patched():
    """The patched 3.7 interpreter built by `python3 -m tools build`."""
    return built_interpreter("3.7")


@pytest.fixture(scope="session")
def patched_313():
    """The patched 3.13 interpreter of `python3 -m tools build --base 3.13`."""
    return built_interpreter("3.13")


def newest_upstream():
    """The newest installed CPython 3.8+ (pyenv), the byte-level oracle."""
    import glob
    best = None
    for prefix in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*")):
        name = os.path.basename(prefix)
        parts = name.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            continue
        version = tuple(int(p) for p in parts)
        python = Path(prefix, "bin", "python%d.%d" % version[:2])
        if version >= (3, 8) and python.exists() and (best is None
                                                      or version > best[0]):
            best = (version, python)
    return best[1] if best else None


@pytest.fixture(scope="session")
def oracle():
    python = newest_upstream()
    if python is None:
        pytest.skip("no upstream CPython 3.8+ installed (pyenv) to compare "
                    "against: `pyenv install 3.13` enables these tests")
    return python
