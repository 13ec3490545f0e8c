"""`tools export pyenv`: a python-build definition and its patch folder.

On the synthetic base: the layout python-build reads, the definition as
python-build sources it, the checksum, the errors, and patches that carry
the files they add and rebuild apply's tree with `patch -p1` -- then a
python-build run on a stand-in CPython whose configure and Makefile take
seconds.  Once for real: python-build compiles the patched 3.7.3 from a
tarball of the imported base, offline.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, make_source_tree, run_tools
from tools.model.series import Series
from tools.model.workspace import LINES

NAME = "3.7.3-zerocopy"
PACKAGE = "Python-3.7.3"
PATCHES = ["0001-bpo-1-Raise-the-highest-protocol.patch",
           "0002-bpo-2-Teach-the-accelerator-protocol-5.patch"]
PYTHON_ORG = LINES["3.7"].downloads["3.7.3"]


@pytest.fixture
def imported(synthetic):
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    return synthetic


def export(spec, *args, check=0):
    return run_tools("export", "pyenv", *args, workspace=spec["ws"],
                     cache=spec["cache"], check=check)


def files_below(directory):
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*")
                  if p.is_file())


def tree_files(root):
    """{path: bytes} of a source tree, without its git directory."""
    return {str(p.relative_to(root)): p.read_bytes()
            for p in Path(root).rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def source_definition(definition):
    """What the definition asks of python-build, which sources it: the
    python-build functions it calls are stubbed to print their arguments."""
    script = textwrap.dedent('''\
        install_package() { printf 'install_package'; printf ' %s' "$@"; echo; }
        prefer_openssl11() { echo prefer_openssl11; }
        has_tar_xz_support() { return 0; }
        source "$1"
        echo "ac_cv_prog_HAS_GIT=$ac_cv_prog_HAS_GIT"
        echo "PYTHON_BUILD_CONFIGURE_WITH_OPENSSL=$PYTHON_BUILD_CONFIGURE_WITH_OPENSSL"
        ''')
    proc = subprocess.run(["bash", "-c", script, "bash", str(definition)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


def make_tarball(tree, path, top=PACKAGE):
    with tarfile.open(path, "w:xz") as archive:
        archive.add(str(tree), arcname=top)
    return path


def apply_like_python_build(patch_dir, tree):
    """python-build's way: cat the folder's files in name order, then one
    `patch -p1 --force` in the unpacked tree."""
    text = b"".join(p.read_bytes() for p in sorted(Path(patch_dir).iterdir()))
    proc = subprocess.run(["patch", "-p1", "--force"], cwd=str(tree),
                          input=text, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode()


# -- layout and definition ----------------------------------------------------

def test_layout_definition_and_commands(imported, tmp_path):
    out = tmp_path / "pyenv"
    proc = export(imported, out)
    assert files_below(out) == [NAME] + [
        "patches/%s/%s/%s" % (NAME, PACKAGE, name) for name in PATCHES]
    assert source_definition(out / NAME) == [
        "prefer_openssl11",
        "install_package %s %s#%s standard verify_py37 copy_python_gdb "
        "ensurepip" % (PACKAGE, PYTHON_ORG.url, PYTHON_ORG.sha256),
        "ac_cv_prog_HAS_GIT=not-found",
        "PYTHON_BUILD_CONFIGURE_WITH_OPENSSL=1"]
    text = (out / NAME).read_text()
    for name in PATCHES:
        assert "#   " + name in text
    # The exact commands, with the definition's absolute path.
    assert "python-build %s PREFIX" % (out / NAME) in proc.stdout
    assert "  pyenv install %s\n" % (out / NAME) in proc.stdout
    assert "PYTHON_BUILD_CACHE_PATH" not in proc.stdout
    assert "sha256 %s" % PYTHON_ORG.sha256 in proc.stdout
    # The series is applied in a scratch tree; the user's build/3.7/src
    # (and its record) are left alone.
    build = imported["ws"] / "build" / "3.7"
    assert (build / "export" / "src" / ".git").is_dir()
    assert not (build / "src").exists()
    assert not (build / "applied.json").exists()


def test_name_sets_definition_and_patch_folder(imported, tmp_path):
    out = tmp_path / "pyenv"
    export(imported, out, "--name", "3.7-zc")
    assert files_below(out)[0] == "3.7-zc"
    assert (out / "patches" / "3.7-zc" / PACKAGE / PATCHES[0]).is_file()


def test_export_is_stable(imported, tmp_path):
    out = tmp_path / "pyenv"
    export(imported, out)
    before = tree_files(out)
    export(imported, out, "--force")
    assert tree_files(out) == before


# -- the patches --------------------------------------------------------------

def test_patches_carry_added_files_and_their_diffstat(imported, tmp_path):
    out = tmp_path / "pyenv"
    export(imported, out)
    first = (out / "patches" / NAME / PACKAGE / PATCHES[0]).read_text()
    news = imported["news"]
    assert "diff --git a/%s b/%s\nnew file mode 100644\n" % (news, news) \
        in first
    assert "+Protocol 5 is the highest protocol.\n" in first
    assert " 2 files changed, 2 insertions(+), 1 deletion(-)\n" in first
    assert " create mode 100644 %s\n" % news in first
    # The series' own patch carries the same file.
    kept = (imported["ws"] / "patches" / "3.7" / PATCHES[0]).read_text()
    assert "+Protocol 5 is the highest protocol.\n" in kept


def test_patches_rebuild_apply_tree_with_patch_p1(imported, tmp_path):
    out = tmp_path / "pyenv"
    export(imported, out)
    run_tools("apply", workspace=imported["ws"], cache=imported["cache"],
              check=0)
    unpacked = tmp_path / "unpacked"
    shutil.copytree(imported["tree"], unpacked)
    apply_like_python_build(out / "patches" / NAME / PACKAGE, unpacked)
    applied = tree_files(imported["ws"] / "build" / "3.7" / "src")
    assert tree_files(unpacked) == applied
    assert b"HIGHEST_PROTOCOL = 5" in applied["Lib/pickle.py"]
    assert imported["news"] in applied


# -- --tarball ----------------------------------------------------------------

def test_tarball_is_pinned_and_cached_under_python_build_name(imported,
                                                               tmp_path):
    tarball = make_tarball(imported["tree"], tmp_path / "stand-in.tar.xz")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    out = tmp_path / "pyenv"
    proc = export(imported, out, "--tarball", tarball)
    cached = out / "cache" / (PACKAGE + ".tar.xz")
    assert cached.read_bytes() == tarball.read_bytes()
    assert files_below(out) == [NAME, "cache/%s.tar.xz" % PACKAGE] + [
        "patches/%s/%s/%s" % (NAME, PACKAGE, name) for name in PATCHES]
    assert source_definition(out / NAME)[1] == (
        "install_package %s %s#%s standard verify_py37 copy_python_gdb "
        "ensurepip" % (PACKAGE, cached.as_uri(), digest))
    assert "PYTHON_BUILD_CACHE_PATH=%s " % (out / "cache") in proc.stdout
    assert "python-build %s PREFIX" % (out / NAME) in proc.stdout
    assert "sha256 %s" % digest in proc.stdout


def test_reexport_from_the_cached_tarball(imported, tmp_path):
    tarball = make_tarball(imported["tree"], tmp_path / "stand-in.tar.xz")
    out = tmp_path / "pyenv"
    export(imported, out, "--tarball", tarball)
    cached = out / "cache" / (PACKAGE + ".tar.xz")
    first = source_definition(out / NAME)
    export(imported, out, "--force", "--tarball", cached)
    assert cached.read_bytes() == tarball.read_bytes()
    assert source_definition(out / NAME) == first


def test_gzip_tarball_keeps_its_kind(imported, tmp_path):
    tarball = tmp_path / "cpython.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(str(imported["tree"]), arcname=PACKAGE)
    out = tmp_path / "pyenv"
    export(imported, out, "--tarball", tarball)
    assert (out / "cache" / (PACKAGE + ".tar.gz")).is_file()
    assert "/cache/%s.tar.gz#" % PACKAGE in (out / NAME).read_text()
    assert "has_tar_xz_support" not in (out / NAME).read_text()


def test_warns_when_the_base_is_not_the_release(imported, tmp_path):
    """Without --tarball the patches go onto python.org's tarball: a base
    whose touched files differ from bases.json's release hashes is named."""
    manifest = imported["ws"] / "patches" / "3.7" / "bases.json"
    manifest.write_text(json.dumps({"3.7.3": {
        "Lib/pickle.py": "0" * 64,
        "Modules/_pickle.c": hashlib.sha256(
            (imported["tree"] / "Modules" / "_pickle.c").read_bytes())
        .hexdigest()}}))
    proc = export(imported, tmp_path / "pyenv")
    warnings = [l for l in proc.stdout.splitlines()
                if l.startswith("warning:")]
    assert len(warnings) == 1, proc.stdout
    assert "Lib/pickle.py: differs from CPython 3.7.3" in warnings[0]
    tarball = make_tarball(imported["tree"], tmp_path / "stand-in.tar.xz")
    proc = export(imported, tmp_path / "offline", "--tarball", tarball)
    assert "warning:" not in proc.stdout


# -- errors -------------------------------------------------------------------

def test_without_a_source_base(synthetic, tmp_path):
    proc = export(synthetic, tmp_path / "pyenv", check=None)
    assert_clean_error(proc, 2, "no CPython 3.7 source base imported")
    assert "python3 -m tools base import PATH" in proc.stderr
    assert not (tmp_path / "pyenv").exists()


def test_unknown_format(imported, tmp_path):
    proc = run_tools("export", "conda", tmp_path / "out",
                     workspace=imported["ws"], cache=imported["cache"])
    assert_clean_error(proc, 2, "unknown export format 'conda': choose pyenv")
    assert not (tmp_path / "out").exists()


def test_refuses_a_directory_that_is_not_empty(imported, tmp_path):
    out = tmp_path / "pyenv"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    proc = export(imported, out, check=None)
    assert_clean_error(proc, 2, "%s exists and is not empty" % out)
    assert "--force" in proc.stderr
    assert files_below(out) == ["notes.txt"]


def test_force_replaces_an_earlier_export_only(imported, tmp_path):
    out = tmp_path / "pyenv"
    export(imported, out)
    patch_dir = out / "patches" / NAME / PACKAGE
    # python-build would apply a leftover patch of an older series.
    (patch_dir / "0003-gone-from-the-series.patch").write_text("stale\n")
    (out / "notes.txt").write_text("mine\n")
    export(imported, out, "--force")
    assert sorted(p.name for p in patch_dir.iterdir()) == PATCHES
    assert (out / "notes.txt").read_text() == "mine\n"


def test_refuses_a_file_as_directory(imported, tmp_path):
    target = tmp_path / "file"
    target.write_text("x\n")
    proc = export(imported, target, "--force", check=None)
    assert_clean_error(proc, 2, "exists and is not a directory")


@pytest.mark.parametrize("name, fragment", [
    ("zerocopy", "must start with 3.7"),
    ("3.13.5-zerocopy", "must start with 3.7"),
    ("3.70-zerocopy", "must start with 3.7"),
    ("3.7/zerocopy", "cannot name a python-build definition"),
])
def test_bad_definition_names(imported, tmp_path, name, fragment):
    proc = export(imported, tmp_path / "pyenv", "--name", name, check=None)
    assert_clean_error(proc, 2, fragment)
    assert not (tmp_path / "pyenv").exists()


def test_bad_tarballs(imported, tmp_path):
    other = make_source_tree(tmp_path / "other", version="3.7.4")
    cases = {
        "missing.tar.xz": ("no tarball at", None),
        "source.zip": ("is not a tarball python-build unpacks", b"PK"),
        "garbage.tar.xz": ("cannot read the tarball", b"not xz at all"),
        "other.tar.xz": ("is CPython 3.7.4, but the patches are made from "
                         "the imported 3.7.3 base", other),
        "empty.tar.xz": ("holds no CPython source tree", tmp_path / "empty"),
        # python-build expects the tree in one top directory.
        "flat.tar.xz": ("holds no CPython source tree in a top directory "
                        "(no Python-3.7.3/Include/patchlevel.h)",
                        ("flat", imported["tree"])),
    }
    (tmp_path / "empty").mkdir()
    for filename, (fragment, content) in cases.items():
        path = tmp_path / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, tuple):
            make_tarball(content[1], path, top=".")
        elif content is not None:
            make_tarball(content, path)
        proc = export(imported, tmp_path / "pyenv", "--tarball", path,
                      check=None)
        assert_clean_error(proc, 2, fragment)
    assert not (tmp_path / "pyenv").exists()


# -- python-build itself ------------------------------------------------------

def python_build():
    from tools.export import python_build_command
    found = python_build_command()
    return found if os.access(found, os.X_OK) else shutil.which(found)


def require_python_build():
    found = python_build()
    if found is None:
        pytest.skip("python-build (pyenv's installer) is not "
                    "installed; install pyenv (https://github.com/pyenv/pyenv"
                    "#installation) to run this test")
    return found


def run_python_build(definition, prefix, cache, tmp, jobs=1, timeout=600):
    """python-build with the exported tarball and no network: an HTTP
    client that does not exist makes any download attempt fail."""
    env = dict(os.environ, PYTHON_BUILD_CACHE_PATH=str(cache),
               PYTHON_BUILD_HTTP_CLIENT="no-network", TMPDIR=str(tmp),
               MAKE_OPTS="-j%d" % jobs)
    return subprocess.run([require_python_build(), str(definition),
                           str(prefix)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


# A stand-in CPython build for python-build: configure records its
# arguments and environment, make install puts the sources it was given
# under PREFIX/share and a python3.7 that runs the tests' interpreter
# (and skips ensurepip, which would install pip into it).
STAND_IN_CONFIGURE = textwrap.dedent('''\
    #!/bin/sh
    prefix=
    for arg in "$@"; do
        case "$arg" in --prefix=*) prefix="${arg#--prefix=}" ;; esac
    done
    { echo "$@"; echo "ac_cv_prog_HAS_GIT=$ac_cv_prog_HAS_GIT"; } \\
        > configure-args
    printf 'all:\\n\\ttrue\\ninstall:\\n\\tsh install.sh %s\\n' "$prefix" \\
        > Makefile
    ''')
STAND_IN_INSTALL = textwrap.dedent('''\
    #!/bin/sh
    mkdir -p "$1/bin" "$1/share/zerocopy"
    cp -R Lib Modules Misc configure-args "$1/share/zerocopy/"
    cat > "$1/bin/python3.7" <<EOF
    #!/bin/sh
    case "\\$*" in *ensurepip*) exit 0 ;; esac
    exec %s "\\$@"
    EOF
    chmod +x "$1/bin/python3.7"
    ''') % sys.executable


def test_python_build_applies_the_patches_offline(synthetic, tmp_path):
    require_python_build()
    (synthetic["tree"] / "configure").write_text(STAND_IN_CONFIGURE)
    (synthetic["tree"] / "configure").chmod(0o755)
    (synthetic["tree"] / "install.sh").write_text(STAND_IN_INSTALL)
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    tarball = make_tarball(synthetic["tree"], tmp_path / "stand-in.tar.xz")
    out = tmp_path / "pyenv"
    proc = export(synthetic, out, "--tarball", tarball)
    assert "PYTHON_BUILD_CACHE_PATH=%s " % (out / "cache") in proc.stdout
    prefix = tmp_path / "prefix"
    (tmp_path / "tmp").mkdir()
    build = run_python_build(out / NAME, prefix, out / "cache",
                             tmp_path / "tmp", timeout=300)
    assert build.returncode == 0, build.stdout
    assert "Installed %s to %s" % (PACKAGE, prefix) in build.stdout
    installed = prefix / "share" / "zerocopy"
    assert "HIGHEST_PROTOCOL = 5" in (installed / "Lib" / "pickle.py").read_text()
    assert "= 5;" in (installed / "Modules" / "_pickle.c").read_text()
    assert (installed / synthetic["news"]).read_text() == \
        "Protocol 5 is the highest protocol.\n"
    arguments = (installed / "configure-args").read_text().splitlines()
    assert "--prefix=%s" % prefix in arguments[0].split()
    assert arguments[1] == "ac_cv_prog_HAS_GIT=not-found"


def test_python_build_refuses_a_changed_tarball(imported, tmp_path):
    require_python_build()
    tarball = make_tarball(imported["tree"], tmp_path / "stand-in.tar.xz")
    out = tmp_path / "pyenv"
    export(imported, out, "--tarball", tarball)
    cached = out / "cache" / (PACKAGE + ".tar.xz")
    cached.write_bytes(cached.read_bytes() + b"\0")
    (tmp_path / "tmp").mkdir()
    build = run_python_build(out / NAME, tmp_path / "prefix", out / "cache",
                             tmp_path / "tmp", timeout=120)
    # The checksum does not match: python-build tries to download instead,
    # which the missing HTTP client stops.
    assert build.returncode != 0
    assert not (tmp_path / "prefix" / "bin").exists()


# -- the real build -----------------------------------------------------------

def real_source_base():
    from tools.model import basestore
    from tools.model.workspace import Workspace
    return basestore.load(Workspace(), LINES["3.7"], "source")


CHECK_INTERPRETER = textwrap.dedent('''\
    import json, pickle, sys, _pickle
    buffers = []
    data = bytearray(b"x" * 1000)
    dumped = pickle.dumps(pickle.PickleBuffer(data), protocol=5,
                          buffer_callback=buffers.append)
    loaded = pickle.loads(dumped, buffers=buffers)
    print(json.dumps({
        "version": sys.version,
        "git": list(sys._git),
        "highest": pickle.HIGHEST_PROTOCOL,
        "c_pickler": pickle.Pickler is _pickle.Pickler,
        "out_of_band": len(buffers) == 1 and loaded is buffers[0]
                       and bytes(loaded.raw()) == bytes(data)
                       and len(dumped) < 100,
        "readonly": memoryview(bytearray(b"ab")).toreadonly().readonly,
    }))
    ''')


def test_python_build_compiles_the_patched_37(tmp_path):
    """The real series: python-build builds 3.7.3 with it from a tarball of
    the imported base, offline (about two minutes on two cores)."""
    base = real_source_base()
    if base is None or base.version != "3.7.3":
        pytest.skip("no CPython 3.7.3 source base imported, so "
                    "python-build has nothing to build; `python3 -m tools base "
                    "import PATH` (a 3.7.3 source tree or tarball) enables this "
                    "test")
    require_python_build()
    tarball = tmp_path / "from-the-base.tar.xz"
    with open(tarball, "wb") as f:
        tar = subprocess.Popen(["tar", "-C", str(base.directory), "-cf", "-",
                                "--transform", "s,^tree,%s," % PACKAGE, "tree"],
                               stdout=subprocess.PIPE)
        subprocess.run(["xz", "-1", "-T0"], stdin=tar.stdout, stdout=f,
                       check=True)
        assert tar.wait() == 0
    out = tmp_path / "pyenv"
    proc = run_tools("export", "pyenv", out, "--tarball", tarball, check=0)
    series = Series.load(REPO / "patches" / "3.7")
    assert "applied %d patch(es)" % len(series.patches) in proc.stdout
    exported = sorted((out / "patches" / NAME / PACKAGE).iterdir())
    assert [p.name for p in exported] == [p.name for p in series.patches]
    prefix = tmp_path / "prefix"
    (tmp_path / "tmp").mkdir()
    build = run_python_build(out / NAME, prefix, out / "cache",
                             tmp_path / "tmp", jobs=os.cpu_count() or 1,
                             timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:]
    assert "Installed %s to %s" % (PACKAGE, prefix) in build.stdout
    python = prefix / "bin" / "python3.7"
    check = subprocess.run([str(python), "-c", CHECK_INTERPRETER],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    assert check.returncode == 0, check.stderr
    facts = json.loads(check.stdout)
    assert facts["version"].startswith("3.7.3 (default, ")
    assert facts["git"] == ["CPython", "", ""]
    assert facts["highest"] == 5
    assert facts["c_pickler"] is True
    assert facts["out_of_band"] is True
    assert facts["readonly"] is True
    # Files the series adds came with the patches; ensurepip installed pip.
    assert (prefix / "lib" / "python3.7" / "test" /
            "test_picklebuffer.py").is_file()
    assert subprocess.run([str(python), "-m", "pip", "--version"],
                          stdout=subprocess.DEVNULL).returncode == 0
