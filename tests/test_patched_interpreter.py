"""The patched CPython 3.7, end to end, through subprocesses.

Each test runs a short script in the interpreter `python3 -m tools build`
made and checks what it prints.  Tests of the C pickler are skipped, with
the command that enables them, when the build has no C accelerator.
"""

import json
import subprocess
import textwrap

import pytest

from conftest import run_script

IMPLEMENTATIONS = {
    "c": "Pickler, Unpickler = pickle.Pickler, pickle.Unpickler",
    "py": "Pickler, Unpickler = pickle._Pickler, pickle._Unpickler",
}


@pytest.fixture(params=["c", "py"])
def impl(request, patched):
    if request.param == "c" and not patched["c_accelerator"]:
        pytest.skip("no C accelerator in this %s build: `python3 -m tools base "
                    "import PATH && python3 -m tools build` enables the C "
                    "tests" % patched["mode"])
    return request.param


def test_protocol_5_is_there(patched):
    facts = run_script(patched["python"], """
        import json, pickle, sys
        try:
            import _pickle
        except ImportError:
            _pickle = None
        print(json.dumps({
            "version": sys.version_info[:2],
            "highest": pickle.HIGHEST_PROTOCOL,
            "default": pickle.DEFAULT_PROTOCOL,
            "picklebuffer": pickle.PickleBuffer.__name__,
            "all": "PickleBuffer" in pickle.__all__,
            "c_pickler": _pickle is not None
                         and pickle.Pickler is _pickle.Pickler,
            "py_pickler": pickle.Pickler is pickle._Pickler,
            "c_unpickler": _pickle is not None
                           and pickle.Unpickler is _pickle.Unpickler,
        }))
        """)
    assert facts["version"] == [3, 7]
    assert facts["highest"] == 5
    assert facts["default"] == 3
    assert facts["picklebuffer"] == "PickleBuffer"
    assert facts["all"]
    if patched["c_accelerator"]:
        assert facts["c_pickler"] and facts["c_unpickler"]
    else:
        # Consistently Python: no half-patched C accelerator in use.
        assert facts["py_pickler"] and not facts["c_unpickler"]


def test_out_of_band_100mb_bytearray_shares_memory(patched, impl):
    result = run_script(patched["python"], IMPLEMENTATIONS[impl].join(["""
        import io, json, pickle
        """, """
        original = bytearray(b"\\x01" * (100 * 1024 * 1024))
        buffers = []
        out = io.BytesIO()
        Pickler(out, 5, buffer_callback=buffers.append).dump(
            pickle.PickleBuffer(original))
        stream = out.getvalue()
        loaded = Unpickler(io.BytesIO(stream), buffers=buffers).load()
        view = memoryview(loaded)
        original[12345] = 42
        print(json.dumps({
            "stream_len": len(stream),
            "buffers": len(buffers),
            "seen": view[12345],
            "nbytes": view.nbytes,
            "readonly": view.readonly,
        }))
        """]))
    # The 100 MB travel beside the stream, which stays tiny.
    assert result["stream_len"] < 100
    assert result["buffers"] == 1
    assert result["nbytes"] == 100 * 1024 * 1024
    assert result["seen"] == 42, "the loaded object does not share memory"
    assert result["readonly"] is False


def test_numpy_arrays_out_of_band_share_memory(patched, impl):
    code = IMPLEMENTATIONS[impl].join(["""
        import io, json, pickle
        try:
            import numpy
        except ImportError:
            print(json.dumps(None))
            raise SystemExit
        """, """
        results = {}
        for order in "CF":
            array = numpy.zeros((2000, 3000), dtype="f8", order=order)
            buffers = []
            out = io.BytesIO()
            Pickler(out, 5, buffer_callback=buffers.append).dump(array)
            loaded = Unpickler(io.BytesIO(out.getvalue()),
                               buffers=buffers).load()
            results[order] = {
                "buffers": len(buffers),
                "stream_len": len(out.getvalue()),
                "shares": bool(numpy.shares_memory(loaded, array)),
                "equal": bool((loaded == array).all()),
                "order": "F" if loaded.flags.f_contiguous else "C",
            }
        print(json.dumps(results))
        """])
    results = run_script(patched["python"], code)
    if results is None:
        pytest.skip("numpy is not installed in the patched interpreter: "
                    "`python3 -m tools build` installs it when PyPI is "
                    "reachable")
    for order, result in results.items():
        assert result["buffers"] == 1, order
        assert result["stream_len"] < 1000, order
        assert result["shares"], "numpy %s array was copied" % order
        assert result["equal"], order
        assert result["order"] == order


def test_pickle5_is_the_standard_pickle(patched):
    facts = run_script(patched["python"], """
        import json, pickle, pickle5
        print(json.dumps({
            "same": pickle5 is pickle,
            "buffer": pickle5.PickleBuffer is pickle.PickleBuffer,
        }))
        """)
    assert facts == {"same": True, "buffer": True}


def test_reducer_override_is_consulted(patched, impl):
    calls = run_script(patched["python"], IMPLEMENTATIONS[impl].join(["""
        import io, json, pickle
        """, """
        class Custom(object):
            pass

        def function():
            pass

        class Recording(Pickler):
            def __init__(self, *args, **kwargs):
                Pickler.__init__(self, *args, **kwargs)
                self.seen = []

            def reducer_override(self, obj):
                self.seen.append(type(obj).__name__)
                if isinstance(obj, Custom):
                    return int, (7,)
                return NotImplemented

        out = io.BytesIO()
        pickler = Recording(out, 5)
        pickler.dump([Custom(), function, Custom])
        loaded = Unpickler(io.BytesIO(out.getvalue())).load()
        print(json.dumps({"seen": pickler.seen, "loaded_first": loaded[0],
                          "function": loaded[1] is function,
                          "class": loaded[2] is Custom}))
        """]))
    for name in ("Custom", "function", "type"):
        assert name in calls["seen"]
    assert calls["loaded_first"] == 7
    assert calls["function"] and calls["class"]


def test_buffers_errors(patched, impl):
    errors = run_script(patched["python"], IMPLEMENTATIONS[impl].join(["""
        import io, json, pickle
        """, """
        def error(call):
            try:
                call()
            except Exception as exc:
                return type(exc).__name__
            return None

        buffers = []
        out = io.BytesIO()
        Pickler(out, 5, buffer_callback=buffers.append).dump(
            pickle.PickleBuffer(b"x"))
        stream = out.getvalue()
        print(json.dumps({
            "no_buffers": error(lambda: Unpickler(io.BytesIO(stream)).load()),
            "too_few": error(lambda: Unpickler(io.BytesIO(stream),
                                               buffers=[]).load()),
            "old_protocol": error(lambda: Pickler(io.BytesIO(), 4,
                                                  buffer_callback=print)),
            "pb_protocol_4": error(lambda: Pickler(io.BytesIO(), 4).dump(
                pickle.PickleBuffer(b"x"))),
        }))
        """]))
    assert errors["no_buffers"] == "UnpicklingError"
    assert errors["too_few"] == "UnpicklingError"
    assert errors["old_protocol"] == "ValueError"
    assert errors["pb_protocol_4"] == "PicklingError"


def test_cross_interpreter_out_of_band(patched, oracle):
    """Streams and buffers written by 3.7 load in upstream and back."""
    writer = """
        import json, pickle, sys
        payload = {"blob": pickle.PickleBuffer(bytearray(b"%s" * 100000)),
                   "frozen": pickle.PickleBuffer(b"ro" * 1000),
                   "text": "caf\\u00e9"}
        buffers = []
        stream = pickle.dumps(payload, protocol=5,
                              buffer_callback=buffers.append)
        print(json.dumps({"stream": stream.hex(),
                          "buffers": [b.raw().tobytes().hex()
                                      for b in buffers]}))
        """
    reader = """
        import json, pickle, sys
        data = json.loads(sys.stdin.read())
        buffers = [bytearray.fromhex(b) for b in data["buffers"]]
        obj = pickle.loads(bytes.fromhex(data["stream"]), buffers=buffers)
        print(json.dumps({"blob": bytes(obj["blob"][:4]).decode(),
                          "blob_len": len(obj["blob"]),
                          "frozen_readonly": memoryview(obj["frozen"]).readonly,
                          "text": obj["text"]}))
        """
    for source, target in ((patched["python"], oracle),
                           (oracle, patched["python"])):
        made = subprocess.run([str(source), "-c", textwrap.dedent(writer % "ab")],
                              stdout=subprocess.PIPE, text=True, check=True)
        read = subprocess.run([str(target), "-c", textwrap.dedent(reader)],
                              input=made.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout) == {
            "blob": "abab", "blob_len": 200000, "frozen_readonly": True,
            "text": "caf\u00e9"}, (source, target)
