"""Byte-for-byte interoperability of the patched 3.7 with upstream CPython.

A corpus of objects (tests/interop_agent.py) is pickled at protocol 5 by the
C and the Python pickler of the patched 3.7 and by the C pickler of the
newest installed upstream CPython, in-band and with out-of-band buffers.
The streams must be identical where upstream's output is deterministic, and
every stream must load to the same objects in all three.
"""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

AGENT = Path(__file__).with_name("interop_agent.py")


def agent(python, request):
    proc = subprocess.run([str(python), str(AGENT)], input=json.dumps(request),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def implementations(patched):
    impls = ["py"]
    if patched["c_accelerator"]:
        impls.insert(0, "c")
    else:
        print("\nSKIPPED: interop of the patched C pickler: this %s build has "
              "no C accelerator (python3 -m tools base import PATH && "
              "python3 -m tools build)" % patched["mode"])
    return impls


def numpy_version(python):
    proc = subprocess.run([str(python), "-c", "import numpy; "
                           "print(numpy.__version__)"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
    return proc.stdout.strip() or None


# CPython 3.7.3 itself (not the series) writes protocol 0 unicode with
# \x00, \r and \x1a unescaped; later 3.7 releases and upstream escape them
# as \u0000, \u000d and \u001a.  Both forms load to the same object.
BASE_PROTOCOL0_ESCAPES = {"bytes_small", "bytes_300"}


def comparable(name, ours_numpy, theirs_numpy):
    # numpy 2 renamed numpy.core to numpy._core: streams of arrays made with
    # different numpy majors name different modules by design.
    if name.startswith("numpy"):
        return (ours_numpy and theirs_numpy
                and ours_numpy.split(".")[0] == theirs_numpy.split(".")[0])
    return True


@pytest.mark.parametrize("protocol, oob", [
    (0, False), (1, False), (2, False), (3, False), (4, False), (5, False),
    (5, True)], ids=["p0", "p1", "p2", "p3", "p4", "p5-in-band",
                     "p5-out-of-band"])
def test_streams_match_upstream(patched, oracle, implementations, protocol,
                                oob):
    theirs = agent(oracle, {"action": "dump", "impl": "c",
                            "protocol": protocol, "oob": oob})["objects"]
    ours_numpy = numpy_version(patched["python"])
    theirs_numpy = numpy_version(oracle)
    compared = 0
    for impl in implementations:
        ours = agent(patched["python"], {"action": "dump", "impl": impl,
                                         "protocol": protocol,
                                         "oob": oob})["objects"]
        for name, expected in sorted(theirs.items()):
            if not comparable(name, ours_numpy, theirs_numpy):
                continue
            if protocol == 0 and name in BASE_PROTOCOL0_ESCAPES and \
                    patched["pickle_base_version"] == "3.7.3":
                continue
            assert name in ours, name
            assert ours[name] == expected, "%s (%s pickler) differs from %s" % (
                name, impl, oracle)
            compared += 1
    assert compared >= 18 * len(implementations)


@pytest.mark.parametrize("oob", [False, True], ids=["in-band", "out-of-band"])
def test_patched_c_and_python_picklers_agree(patched, implementations, oob):
    if "c" not in implementations:
        pytest.skip("no C accelerator in this build (see the printed reason)")
    dumps = [agent(patched["python"], {"action": "dump", "impl": impl,
                                       "protocol": 5, "oob": oob})["objects"]
             for impl in ("c", "py")]
    assert dumps[0] == dumps[1]


@pytest.mark.parametrize("oob", [False, True], ids=["in-band", "out-of-band"])
def test_every_stream_loads_everywhere(patched, oracle, implementations, oob):
    producers = [(oracle, "c")] + [(patched["python"], i) for i in implementations]
    consumers = producers
    ours_numpy = numpy_version(patched["python"])
    theirs_numpy = numpy_version(oracle)
    reference = {}
    for producer, impl in producers:
        objects = agent(producer, {"action": "dump", "impl": impl,
                                   "protocol": 5, "oob": oob})["objects"]
        for consumer, load_impl in consumers:
            cross = producer != consumer
            names = {n: o for n, o in objects.items()
                     if not cross or comparable(n, ours_numpy, theirs_numpy)}
            loaded = agent(consumer, {"action": "load", "impl": load_impl,
                                      "objects": names})["loaded"]
            for name, description in loaded.items():
                assert description[0] != "error", (name, description)
                assert description == reference.setdefault(name, description), (
                    "%s made by %s/%s loads differently in %s/%s"
                    % (name, producer, impl, consumer, load_impl))
