"""The patched CPython 3.13, end to end: the interpreter `python3 -m tools
build --base 3.13` made, and the verbs of the 3.13 line on it.

Skipped, with the command that enables them, when there is no 3.13 build.
"""

import shutil

import pytest

from conftest import REPO, run_script, run_tools


@pytest.mark.parametrize("impl", ["c", "py"])
def test_protocol_5_out_of_band_round_trip(patched_313, impl):
    facts = run_script(patched_313["python"], """
        import io, json, pickle, sys
        P, U = {"c": (pickle.Pickler, pickle.Unpickler),
                "py": (pickle._Pickler, pickle._Unpickler)}[%r]
        payload = bytearray(b"x" * 100000)
        buffers = []
        f = io.BytesIO()
        P(f, protocol=5, buffer_callback=buffers.append).dump(
            pickle.PickleBuffer(payload))
        back = U(io.BytesIO(f.getvalue()), buffers=buffers).load()
        print(json.dumps({"version": sys.version_info[:2],
                          "stream": len(f.getvalue()),
                          "buffers": len(buffers),
                          "same": back is buffers[0],
                          "zero_copy": memoryview(back).obj is payload}))
        """ % impl)
    assert facts["version"] == [3, 13]
    # Out of band: the payload travels in the buffer, not in the stream.
    assert facts["buffers"] == 1
    assert facts["stream"] < 100
    # No copy on the way back either: the object is the buffer given,
    # which still wraps the payload itself.
    assert facts["same"] is True
    assert facts["zero_copy"] is True


@pytest.mark.parametrize("text", ["ascii", "latin1", "ucs2", "ucs4"])
def test_large_str_write_path(patched_313, text):
    """A large str dumped to a file by the C pickler: the same bytes as the
    Python pickler's, it loads back, and no UTF-8 copy stays attached to
    it (stock 3.13 caches one, 1 to 1.5 times the string's size)."""
    facts = run_script(patched_313["python"], """
        import io, json, pickle, sys
        unit = {"ascii": "a", "latin1": "\\xe9", "ucs2": "\\u20ac",
                "ucs4": "\\U0001f600"}[%r]
        s = "".join([unit, "x"]) * (1 << 20)
        before = sys.getsizeof(s)
        f = io.BytesIO()
        pickle.Pickler(f, protocol=5).dump(s)
        after = sys.getsizeof(s)
        g = io.BytesIO()
        pickle._Pickler(g, protocol=5).dump(s)
        print(json.dumps({"identical": f.getvalue() == g.getvalue(),
                          "loads": pickle.loads(f.getvalue()) == s,
                          "before": before, "after": after}))
        """ % text)
    assert facts["identical"] is True
    assert facts["loads"] is True
    assert facts["after"] == facts["before"]


def test_which_names_the_313_interpreter(patched_313):
    proc = run_tools("which", "--base", "3.13", check=0)
    assert proc.stdout.strip() == patched_313["python"]


def test_check_fast_of_the_313_series(patched_313, tmp_path):
    """The static checks of the 3.13 series (NEWS entries through blurb,
    the copies, git am on the pristine base), in a workspace of its own so
    that the checkout's build/ is left alone."""
    ws = tmp_path / "ws"
    for folder in ("patches/3.13", "new-files/3.13", "requirements"):
        shutil.copytree(REPO / folder, ws / folder)
    proc = run_tools("check", "--base", "3.13", "--fast", workspace=ws)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "git am of" in proc.stdout
    assert "check --fast: the static checks pass" in proc.stdout
