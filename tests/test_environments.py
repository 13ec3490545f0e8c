"""Environments made from the patched interpreter, as users make them.

The pickle5 alias lives in the standard library directory, so that a plain
`python -m venv`, a venv with --system-site-packages and `pip install
--target` all import the patched stdlib pickle under the backport's name,
and pip in each of them sees the distribution beside the module.
"""

import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

NUMPY = "numpy==1.21.6"
# The newest pip that still runs on 3.7 and picks releases for it; the pip
# a 3.7.3 venv starts with (19.0.3) chooses wheels that need a newer Python.
PIP = "pip>=22,<24.1"

ALIAS = """
    import importlib.util, json, pickle, sys
    origin = importlib.util.find_spec("pickle5").origin
    import pickle5
    print(json.dumps({"same": pickle5 is pickle, "prefix": sys.prefix,
                      "file": origin}))
    """

NUMPY_OUT_OF_BAND = """
    import json, pickle, numpy
    array = numpy.arange(1 << 20, dtype="u1")
    buffers = []
    data = pickle.dumps(array, protocol=5, buffer_callback=buffers.append)
    copy = pickle.loads(data, buffers=buffers)
    print(json.dumps({"buffers": len(buffers), "stream": len(data),
                      "shares": bool(numpy.shares_memory(array, copy)),
                      "equal": bool((array == copy).all())}))
    """


def run(args, env=None, check=True):
    proc = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, **(env or {})))
    if check:
        assert proc.returncode == 0, proc.stdout
    return proc


def script(python, code, env=None):
    proc = run([python, "-c", textwrap.dedent(code)], env=env)
    return json.loads(proc.stdout.splitlines()[-1])


def make_venv(patched, path, *options):
    run([patched["python"], "-m", "venv", *options, path])
    return Path(path, "bin", "python")


def pip_install(python, *args):
    """pip from PyPI, or a loud skip when it cannot be reached."""
    proc = run([python, "-m", "pip", "install", "--quiet",
                "--disable-pip-version-check", "--retries", "1",
                "--timeout", "20", *args], check=False)
    if proc.returncode != 0:
        pytest.skip("cannot install %s from PyPI (offline?): %s" % (
            " ".join(args), proc.stdout.strip().splitlines()[-1:]))


def stdlib_of(patched):
    return script(patched["python"], """
        import json, sysconfig
        print(json.dumps(sysconfig.get_paths()["stdlib"]))
        """)


@pytest.fixture(scope="module")
def plain_venv(patched, tmp_path_factory):
    return make_venv(patched, tmp_path_factory.mktemp("env") / "plain")


def test_plain_venv_imports_the_standard_pickle(patched, plain_venv):
    facts = script(plain_venv, ALIAS)
    assert facts["same"]
    assert facts["prefix"] == str(plain_venv.parent.parent)
    assert Path(facts["file"]).parent.parent == Path(stdlib_of(patched))


def test_pip_sees_the_alias_where_it_imports_from(patched, plain_venv):
    # pip 19.0.3, as the venv comes: offline.
    proc = run([plain_venv, "-m", "pip", "show", "pickle5"])
    fields = dict(line.split(": ", 1) for line in proc.stdout.splitlines()
                  if ": " in line)
    assert fields["Version"] == "0.0.12+stdlib"
    assert fields["Location"] == stdlib_of(patched)


def make_wheel(directory, name, requires):
    """A pure wheel that only declares REQUIRES, made without any tool."""
    tag = "%s-1.0" % name
    path = Path(directory, "%s-py3-none-any.whl" % tag)
    files = {
        "%s.py" % name: "",
        "%s.dist-info/METADATA" % tag: "Metadata-Version: 2.1\nName: %s\n"
        "Version: 1.0\nRequires-Dist: %s\n" % (name, requires),
        "%s.dist-info/WHEEL" % tag: "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join("%s,,\n" % item for item in files)
    files["%s.dist-info/RECORD" % tag] = record + "%s.dist-info/RECORD,,\n" % tag
    with zipfile.ZipFile(path, "w") as archive:
        for item, text in files.items():
            archive.writestr(item, text)
    return path


def test_a_dependent_of_pickle5_installs_over_the_alias(plain_venv, tmp_path):
    # --no-index: were the alias invisible to pip, it would have to fetch
    # the backport and fail here; seeing it, pip installs only the wheel.
    wheel = make_wheel(tmp_path, "needs_pickle5", "pickle5>=0.0.10")
    proc = run([plain_venv, "-m", "pip", "install", "--no-index",
                "--disable-pip-version-check", wheel])
    assert "Successfully installed needs-pickle5-1.0" in proc.stdout, \
        proc.stdout
    assert script(plain_venv, ALIAS)["same"]
    site = run([plain_venv, "-c", "import sysconfig; print(sysconfig."
                "get_paths()['purelib'])"]).stdout.strip()
    assert not list(Path(site).glob("pickle5*"))


def test_system_site_packages_venv(patched, tmp_path):
    python = make_venv(patched, tmp_path / "system", "--system-site-packages")
    assert script(python, ALIAS)["same"]
    proc = run([python, "-m", "pip", "list", "--format=json",
                "--disable-pip-version-check"])
    listed = [d for d in json.loads(proc.stdout.splitlines()[-1])
              if d["name"] == "pickle5"]
    assert listed == [{"name": "pickle5", "version": "0.0.12+stdlib"}]


def test_numpy_in_a_plain_venv_goes_out_of_band(plain_venv):
    pip_install(plain_venv, PIP)
    pip_install(plain_venv, "--only-binary=:all:", NUMPY)
    facts = script(plain_venv, NUMPY_OUT_OF_BAND)
    assert facts == {"buffers": 1, "stream": facts["stream"], "shares": True,
                     "equal": True}
    assert facts["stream"] < 1000


def test_pip_target_directory(patched, plain_venv, tmp_path):
    target = tmp_path / "target"
    pip_install(plain_venv, PIP)
    pip_install(plain_venv, "--only-binary=:all:", "--target", target, NUMPY)
    # The patched interpreter itself, with only the target on its path.
    env = {"PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    assert script(patched["python"], ALIAS, env=env)["same"]
    facts = script(patched["python"], NUMPY_OUT_OF_BAND, env=env)
    assert facts["shares"] and facts["buffers"] == 1
