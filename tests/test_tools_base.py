"""`tools base`: importing, verifying and forgetting bases."""

import hashlib
import http.server
import io
import json
import os
import tarfile
import threading

import pytest

from conftest import assert_clean_error, git, make_source_tree, run_tools


def test_import_directory_and_status(synthetic):
    proc = run_tools("base", "import", synthetic["tree"],
                     workspace=synthetic["ws"], cache=synthetic["cache"], check=0)
    assert "CPython 3.7.3 source base" in proc.stdout
    tree = synthetic["cache"] / "bases" / "3.7" / "source" / "tree"
    assert (tree / "Lib" / "pickle.py").read_text() == \
        (synthetic["tree"] / "Lib" / "pickle.py").read_text()
    # configure starts with #! and must be runnable after import.
    assert os.access(tree / "configure", os.X_OK)
    status = run_tools("base", workspace=synthetic["ws"],
                       cache=synthetic["cache"], check=0)
    assert "source: CPython 3.7.3" in status.stdout


def test_import_skips_build_products(synthetic):
    (synthetic["tree"] / "config.status").write_text("configured in place\n")
    (synthetic["tree"] / "Lib" / "__pycache__").mkdir()
    (synthetic["tree"] / "Lib" / "__pycache__" / "pickle.pyc").write_bytes(b"x")
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    tree = synthetic["cache"] / "bases" / "3.7" / "source" / "tree"
    assert not (tree / "config.status").exists()
    assert not (tree / "Lib" / "__pycache__").exists()


def make_tarball(tree, path, top="Python-3.7.3"):
    with tarfile.open(path, "w:xz") as archive:
        archive.add(str(tree), arcname=top)
    return path


# GNU tar's `tar -C DIR .` writes ./NAME entries; a tree with no top
# directory is taken as it is.
@pytest.mark.parametrize("top", ["Python-3.7.3", "./Python-3.7.3", "."])
def test_import_tarball(synthetic, top):
    tarball = make_tarball(synthetic["tree"],
                           synthetic["tmp"] / "Python-3.7.3.tar.xz", top)
    proc = run_tools("base", "import", tarball, workspace=synthetic["ws"],
                     cache=synthetic["cache"], check=0)
    assert "tarball" in proc.stdout
    tree = synthetic["cache"] / "bases" / "3.7" / "source" / "tree"
    assert (tree / "Modules" / "_pickle.c").exists()


def test_corrupt_tarball_keeps_the_previous_base(synthetic):
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    tarball = make_tarball(synthetic["tree"], synthetic["tmp"] / "good.tar.xz")
    broken = synthetic["tmp"] / "Python-3.7.3.tar.xz"
    broken.write_bytes(tarball.read_bytes()[:300])
    proc = run_tools("base", "import", broken, workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, "cannot read")
    # Nothing was lost: the base imported before is still there.
    tree = synthetic["cache"] / "bases" / "3.7" / "source" / "tree"
    assert (tree / "Lib" / "pickle.py").exists()
    assert not list(synthetic["cache"].glob("staging-*"))


def test_tarball_with_unsafe_paths_is_refused(synthetic):
    evil = synthetic["tmp"] / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        data = b"owned\n"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    proc = run_tools("base", "import", evil, workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, "unsafe path")
    assert not (synthetic["cache"] / "outside.txt").exists()


def test_import_git_revision_with_missing_blob(synthetic):
    repo = synthetic["tmp"] / "snapshot"
    make_source_tree(repo, extra={"Misc/huge.txt": "gone from the snapshot\n"})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "import")
    rev = git(repo, "rev-parse", "HEAD").strip()
    # Later history must not leak into the import.
    (repo / "README.rst").write_text("study notes\n")
    git(repo, "commit", "-qam", "notes")
    # Simulate a partial snapshot: drop one blob from the object store.
    blob = git(repo, "rev-parse", "%s:Misc/huge.txt" % rev).strip()
    os.remove(repo / ".git" / "objects" / blob[:2] / blob[2:])
    proc = run_tools("base", "import", repo, "--rev", rev[:7],
                     workspace=synthetic["ws"], cache=synthetic["cache"], check=0)
    assert "Misc/huge.txt" in proc.stdout
    tree = synthetic["cache"] / "bases" / "3.7" / "source" / "tree"
    assert "stand-in" in (tree / "README.rst").read_text()
    assert not (tree / "Misc" / "huge.txt").exists()
    record = json.loads((tree.parent / "base.json").read_text())
    assert record["missing"] == ["Misc/huge.txt"]


def test_git_directory_needs_a_known_revision(synthetic):
    repo = synthetic["tmp"] / "snapshot"
    make_source_tree(repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "import")
    proc = run_tools("base", "import", repo, "--rev", "no-such-rev",
                     workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, "has no commit")


@pytest.mark.parametrize("target, fragment", [
    ("missing-dir", "no such file or directory"),
    ("not-cpython", "not a CPython source tree"),
])
def test_import_bad_paths(synthetic, target, fragment):
    path = synthetic["tmp"] / target
    if target == "not-cpython":
        path.mkdir()
        (path / "hello.txt").write_text("hi\n")
    proc = run_tools("base", "import", path, workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, fragment)


def test_import_wrong_line(synthetic):
    other = make_source_tree(synthetic["tmp"] / "cpython38", version="3.8.1")
    proc = run_tools("base", "import", other, workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, "is CPython 3.8.1, not 3.7")


def test_verify_names_the_differing_file(synthetic):
    ws = synthetic["ws"]
    run_tools("base", "import", synthetic["tree"], workspace=ws,
              cache=synthetic["cache"], check=0)
    proc = run_tools("base", "verify", workspace=ws, cache=synthetic["cache"],
                     check=0)
    assert "no manifest for CPython 3.7.3" in proc.stdout
    run_tools("base", "manifest", "--write", workspace=ws,
              cache=synthetic["cache"], check=0)
    manifest = json.loads((ws / "patches" / "3.7" / "bases.json").read_text())
    expected = hashlib.sha256((synthetic["tree"] / "Lib" / "pickle.py")
                              .read_bytes()).hexdigest()
    assert manifest["3.7.3"]["Lib/pickle.py"] == expected
    proc = run_tools("base", "verify", workspace=ws, cache=synthetic["cache"],
                     check=0)
    assert "match CPython 3.7.3" in proc.stdout
    # A base whose _pickle.c was altered is caught, and named.
    (synthetic["tree"] / "Modules" / "_pickle.c").write_text("/* altered */\n")
    run_tools("base", "import", synthetic["tree"], workspace=ws,
              cache=synthetic["cache"], check=0)
    proc = run_tools("base", "verify", workspace=ws, cache=synthetic["cache"])
    assert proc.returncode == 1
    assert "Modules/_pickle.c: differs from CPython 3.7.3" in proc.stdout
    assert "Lib/pickle.py" not in proc.stdout


def test_forget(synthetic):
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    run_tools("base", "forget", workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    proc = run_tools("base", workspace=synthetic["ws"], cache=synthetic["cache"],
                     check=0)
    assert "no CPython 3.7 base imported" in proc.stdout


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args):
        return http.server.SimpleHTTPRequestHandler(*args, directory=str(root))

    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, "http://127.0.0.1:%d/" % server.server_address[1]
    server.shutdown()


def test_download_checks_the_pinned_hash(synthetic, http_root):
    from tools.model import providers
    from tools.model.workspace import Download, Workspace
    root, url = http_root
    tarball = make_tarball(synthetic["tree"], root / "Python-3.7.3.tar.xz")
    ws = Workspace(synthetic["ws"], synthetic["cache"])
    good = Download(url + tarball.name,
                    hashlib.sha256(tarball.read_bytes()).hexdigest())
    assert providers.fetch(ws, good, "CPython 3.7").read_bytes() == \
        tarball.read_bytes()
    (ws.downloads_dir() / tarball.name).unlink()
    bad = Download(url + tarball.name, "0" * 64)
    with pytest.raises(providers.Failure, match="does not match its pinned sha256"):
        providers.fetch(ws, bad, "CPython 3.7")
    assert not list(ws.downloads_dir().iterdir())


def test_download_offline_says_what_to_do(synthetic):
    from tools.model import providers
    from tools.model.workspace import Download, Workspace
    ws = Workspace(synthetic["ws"], synthetic["cache"])
    # Port 9 (discard) on loopback: nothing listens, the connection fails.
    nowhere = Download("http://127.0.0.1:9/Python-3.7.3.tar.xz", "0" * 64)
    with pytest.raises(providers.Failure, match="base import PATH"):
        providers.fetch(ws, nowhere, "CPython 3.7")


def test_unknown_download_version(synthetic):
    proc = run_tools("base", "download", "--version", "3.7.99",
                     workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, "no pinned download for CPython 3.7.99")


@pytest.mark.parametrize("args, fragment", [
    (["base", "explode"], "invalid choice"),
    (["base", "--base", "2.7"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    (["base", "import"], "needs a PATH"),
])
def test_bad_arguments(synthetic, args, fragment):
    proc = run_tools(*args, workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, fragment)


def test_installed_interpreter_not_found(synthetic):
    proc = run_tools("base", "installed", synthetic["tmp"] / "python3.7",
                     workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, "no such interpreter")


def test_installed_interpreter_of_another_line(synthetic):
    import sys
    proc = run_tools("base", "installed", sys.executable,
                     workspace=synthetic["ws"], cache=synthetic["cache"])
    assert_clean_error(proc, 2, "not 3.7")
