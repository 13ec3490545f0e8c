"""`tools build --stock` on a synthetic base whose configure and Makefile
stand in for CPython's, and the command line around it."""

import json
import sys
import textwrap

import pytest

from conftest import REPO, assert_clean_error, run_tools
from tools.model.series import Series
from tools.model.workspace import LINES, Workspace

# configure remembers its options and writes a Makefile whose "install"
# puts a python3.7 under --prefix that runs the interpreter of the tests.
CONFIGURE = textwrap.dedent('''\
    #!/bin/sh
    srcdir=$(cd "$(dirname "$0")" && pwd)
    prefix=
    for arg in "$@"; do
        case "$arg" in --prefix=*) prefix="${arg#--prefix=}" ;; esac
    done
    echo "$@" > configure-args
    printf 'all:\\n\\tcp %s/Lib/pickle.py compiled-pickle.py\\n' "$srcdir" \\
        > Makefile
    printf 'install:\\n\\tsh %s/install.sh %s\\n' "$srcdir" "$prefix" \\
        >> Makefile
    ''')
INSTALL = textwrap.dedent('''\
    #!/bin/sh
    mkdir -p "$1/bin"
    printf '#!/bin/sh\\nexec %s "$@"\\n' > "$1/bin/python3.7"
    chmod +x "$1/bin/python3.7"
    ''') % sys.executable


def stand_in_build(synthetic):
    (synthetic["tree"] / "configure").write_text(CONFIGURE)
    (synthetic["tree"] / "install.sh").write_text(INSTALL)
    run_tools("base", "import", synthetic["tree"], workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    return synthetic["ws"] / "build" / "3.7"


def test_stock_build_applies_only_the_toolchain_fixes(synthetic):
    build = stand_in_build(synthetic)
    proc = run_tools("build", "--stock", "--jobs", "1",
                     workspace=synthetic["ws"], cache=synthetic["cache"],
                     check=0)
    stock = build / "stock"
    assert "applied 1 patch(es)" in proc.stdout
    assert "python3 -m tools bench" in proc.stdout
    # 3.7 declares one toolchain fix: the synthetic series' first patch
    # is in, the second is not.
    assert "HIGHEST_PROTOCOL = 5" in (stock / "obj" /
                                      "compiled-pickle.py").read_text()
    assert "= 4;" in (stock / "src" / "Modules" / "_pickle.c").read_text()
    record = json.loads((build / "interpreter-stock.json").read_text())
    assert record["stock"] is True
    assert record["toolchain_fixes"] == [
        "0001-bpo-1-Raise-the-highest-protocol.patch"]
    assert record["python"] == str(stock / "prefix" / "bin" / "python3.7")
    # The patched build's work tree and records are left alone.
    for name in ("src", "obj", "prefix", "applied.json", "interpreter.json"):
        assert not (build / name).exists(), name
    which = run_tools("which", "--stock", workspace=synthetic["ws"],
                      cache=synthetic["cache"], check=0)
    assert which.stdout.strip() == record["python"]
    proc = run_tools("which", workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, "run `python3 -m tools build`")


def test_stock_and_patched_builds_configure_alike(synthetic):
    build = stand_in_build(synthetic)
    run_tools("build", "--stock", workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    run_tools("build", "--mode", "full", "--no-extras",
              workspace=synthetic["ws"], cache=synthetic["cache"], check=0)
    stock = (build / "stock" / "obj" / "configure-args").read_text().split()
    patched = (build / "obj" / "configure-args").read_text().split()
    assert stock == ["--prefix=%s" % (build / "stock" / "prefix")]
    assert patched == ["--prefix=%s" % (build / "prefix")]
    assert "= 5;" in (build / "src" / "Modules" / "_pickle.c").read_text()
    ws = Workspace(synthetic["ws"], synthetic["cache"])
    line = LINES["3.7"]
    assert ws.read_interpreter(line)["python"] != \
        ws.read_interpreter(line, variant="stock")["python"]


def test_stock_rebuild_leaves_unchanged_sources_alone(synthetic):
    build = stand_in_build(synthetic)
    run_tools("build", "--stock", workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    pickle_py = build / "stock" / "src" / "Lib" / "pickle.py"
    before = pickle_py.stat().st_mtime_ns
    run_tools("build", "--stock", workspace=synthetic["ws"],
              cache=synthetic["cache"], check=0)
    assert pickle_py.stat().st_mtime_ns == before


def test_stock_build_needs_a_source_base(synthetic):
    proc = run_tools("build", "--stock", workspace=synthetic["ws"],
                     cache=synthetic["cache"])
    assert_clean_error(proc, 2, "the stock build (--stock) needs a source "
                       "base: run `python3 -m tools base import PATH`")
    assert not (synthetic["ws"] / "build" / "3.7" / "stock").exists()


def test_stock_build_is_not_a_debug_or_overlay_build(tmp_path):
    for option in (["--debug"], ["--mode", "overlay"]):
        proc = run_tools("build", "--stock", *option, workspace=tmp_path,
                         cache=tmp_path / "cache")
        assert_clean_error(proc, 2, "leave out " + option[0])


def test_interpreter_records_by_variant(tmp_path):
    ws = Workspace(tmp_path, tmp_path / "cache")
    line = LINES["3.7"]
    build = tmp_path / "build" / "3.7"
    assert ws.interpreter_record(line) == build / "interpreter.json"
    assert ws.interpreter_record(line, debug=True) == \
        build / "interpreter-debug.json"
    assert ws.interpreter_record(line, variant="stock") == \
        build / "interpreter-stock.json"
    assert ws.read_interpreter(line, variant="stock") is None


def test_toolchain_fixes_lead_the_series():
    """`build --stock` takes the first patches: they must stay the fixes."""
    first = Series.load(REPO / "patches" / "3.7").patches[
        :LINES["3.7"].toolchain_fixes]
    assert [p.name[:15] for p in first] == ["0001-bpo-27987-"]
    assert LINES["3.13"].toolchain_fixes == 0


def test_overlay_patches_apply_after_the_series(tmp_path):
    """patches/3.7-overlay/ (the overlay build's downstream patch) applies
    to the Lib/ of the whole series, by the code the overlay build uses."""
    from tools.model import basestore
    from tools.model.tree import apply_downstream, apply_series
    ws, line = Workspace(), LINES["3.7"]
    if basestore.load(ws, line, "source") is None:
        pytest.skip("no CPython 3.7 source base: `python3 -m tools base "
                    "download` enables this test")
    applied = apply_series(ws, line, kind="source", src=tmp_path / "src")
    lib = tmp_path / "overlay" / "lib" / "python3.7"
    lib.mkdir(parents=True)
    (lib / "pickle.py").write_bytes((applied["src"] / "Lib" /
                                     "pickle.py").read_bytes())
    assert apply_downstream(ws, line, lib) == [
        p.name for p in Series.load(REPO / "patches" / "3.7-overlay").patches]
    text = (lib / "pickle.py").read_text()
    assert "    from _picklebuffer import PickleBuffer\n" \
        "__all__.append(\"PickleBuffer\")\n" in text
    # Applying twice fails, named: the overlay build installs Lib/ afresh.
    from tools.model.errors import Failure
    with pytest.raises(Failure, match="0001-pickle-take-PickleBuffer.* does "
                       "not apply to the Lib/ of "):
        apply_downstream(ws, line, lib)
