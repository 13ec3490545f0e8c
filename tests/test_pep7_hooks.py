"""The PEP 7 hooks of .pre-commit-config.yaml, run by pre-commit itself."""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

yaml = pytest.importorskip(
    "yaml", reason="PyYAML comes with pre-commit: install the dev "
    "requirements (python3 -m pip install -r requirements/dev.txt) to run "
    "the PEP 7 hook tests")
pytest.importorskip(
    "pre_commit", reason="pre-commit is not installed: python3 -m pip "
    "install -r requirements/dev.txt enables the PEP 7 hook tests")

# Where the hooks look: a path their `files` pattern covers.
C_PATH = "new-files/3.7/Objects/example.c"


def pep7_hooks():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]
            if hook["id"].startswith("pep7-")]


def run_hooks(tmp_path, files):
    """Run every PEP 7 hook on FILES ({path: text}) in a repository of
    their own; {hook id: [the path:line it reports]}."""
    repo = tmp_path / "repo"
    repo.mkdir()
    config = repo / "pep7.yaml"
    config.write_text(yaml.safe_dump({"repos": [
        {"repo": "local", "hooks": pep7_hooks()}]}))
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "cache"))
    subprocess.run(["git", "init", "--quiet"], cwd=str(repo), check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--config", str(config),
         "--color", "never", "--files", *files], cwd=str(repo), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = {}
    for block in proc.stdout.split("- hook id: ")[1:]:
        hook = block.split("\n", 1)[0]
        found[hook] = re.findall(r"^(\S+:\d+):", block, re.M)
    assert (proc.returncode != 0) == bool(found), proc.stdout
    return found


def test_the_hooks_report_each_rule(tmp_path):
    bad = textwrap.dedent("""\
        static int f(int x) {
        \treturn x;
        }

        static int g(int x,
                     int y)
        {
            if(x) {
                return 1;
            } else {
                return y;  // why
            }
        }
        """) + "/* " + "x" * 80 + " */\n"
    where = C_PATH + ":"
    assert run_hooks(tmp_path, {C_PATH: bad}) == {
        "pep7-function-brace": [where + "1"],
        "pep7-tabs": [where + "2"],
        "pep7-function-name": [where + "5"],
        "pep7-keyword-space": [where + "8"],
        "pep7-else": [where + "10"],
        "pep7-c-comments": [where + "11"],
        "pep7-line-length": [where + "14"],
    }


def test_the_hooks_accept_pep7(tmp_path):
    good = textwrap.dedent("""\
        /* A URL in a comment is no C++ comment: http://example.invalid
         * nor is one on a later line: https://example.invalid/a//b */
        static int
        g(int x,
          int y)
        {
            const char *s = "a // b";
            char c = '"';
            if (x) {
                return 1;
            }
            else {
                return s[0] + c + y;
            }
        }

        static PyMethodDef methods[] = {
            {NULL, NULL}  /* sentinel */
        };
        """)
    assert run_hooks(tmp_path, {C_PATH: good}) == {}


def test_the_workspace_c_files_pass(tmp_path):
    files = [REPO / "new-files" / "3.7" / "Objects" / "picklebufobject.c",
             REPO / "new-files" / "3.7" / "Include" / "picklebufobject.h"]
    assert all(p.exists() for p in files)
    files += sorted((REPO / "interpreter" / "3.7" / "overlay").glob("*.[ch]"))
    assert len(files) == 4
    texts = {str(p.relative_to(REPO)): p.read_text() for p in files}
    assert run_hooks(tmp_path, texts) == {}
    # ... and the hooks look at them: a tab in each is reported in each.
    broken = {path: "\t" + text for path, text in texts.items()}
    shutil.rmtree(tmp_path / "repo")
    assert sorted(run_hooks(tmp_path, broken)["pep7-tabs"]) == sorted(
        path + ":1" for path in texts)
