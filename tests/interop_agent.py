"""Pickle and unpickle a fixed corpus on whatever interpreter runs this file.

The interoperability tests run this script under the patched CPython 3.7
and under upstream CPython 3.8+ and compare what they produce.  It must run
unchanged on Python 3.7 through 3.13, so it keeps to their common syntax.

Protocol: one JSON request on stdin, one JSON answer on stdout.
  {"action": "dump", "impl": "c" | "py", "protocol": 5, "oob": false}
      -> {"objects": {name: {"stream": hex, "buffers": [hex, ...]}}}
  {"action": "load", "impl": "c" | "py", "objects": <the answer above>}
      -> {"loaded": {name: description}}
A description is a JSON rendering of the loaded object that two
interpreters must agree on if they loaded the same thing.
"""

import json
import pickle
import sys

try:
    import numpy
except ImportError:
    numpy = None


class Point(object):
    """A plain class pickled by reference to __main__."""

    def __init__(self, x, y):
        self.x = x
        self.y = y


class SlottedPair(object):
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right


class Blob(bytearray):
    """A buffer-providing type whose reducer hands out its memory with
    PickleBuffer at protocol 5, the way PEP 574 intends producers to."""

    def __reduce_ex__(self, protocol):
        if protocol >= 5:
            return type(self)._rebuild, (pickle.PickleBuffer(self),)
        return type(self), (bytes(self),)

    @classmethod
    def _rebuild(cls, data):
        return cls(data)


def restore_state(obj, state):
    """The state_setter of the reduce values below (bpo-35900)."""
    obj.__dict__.update(state)
    obj.restored_by = "state_setter"


class Gauge(object):
    """Reduced with a sixth item, a state_setter."""

    def __init__(self, level):
        self.level = level

    def __reduce__(self):
        return Gauge, (0,), {"level": self.level}, None, None, restore_state


class Tally(list):
    """A state_setter after list items."""

    def __reduce__(self):
        return (Tally, (), {"note": self.note}, iter(self), None,
                restore_state)


def corpus(protocol=5):
    shared = ["shared"]
    recursive = [1, 2]
    recursive.append(recursive)
    tally = Tally([1, "two"])
    tally.note = "counted"
    selfish = Gauge(None)
    selfish.level = selfish
    objects = {
        "none_bools": [None, True, False],
        "ints": [0, 1, -1, 255, 256, 65535, 2 ** 31, -2 ** 31, 2 ** 64,
                 -(2 ** 100), 10 ** 400],
        "floats": [0.0, -0.0, 1.5, 1e300, float("inf")],
        "complex": complex(1.5, -2),
        "short_str": "pickle",
        "unicode_str": "gr\u00fc\u00dfe \u20ac \U0001f40d",
        "surrogate_str": "lone \udc80 surrogate",
        "large_ascii_str": "x" * 70000,
        "large_unicode_str": "\u00e9\u4e2d" * 40000,
        "bytes_small": b"\x00\x01\x02",
        "bytes_300": bytes(range(256)) + b"z" * 44,
        "bytes_large": b"b" * 70000,
        "bytearray_empty": bytearray(),
        "bytearray_small": bytearray(b"mutable"),
        "bytearray_large": bytearray(b"B" * 70000),
        "bytearray_one_byte_twice": [bytearray(b"\x01"), bytearray(b"\x01")],
        "tuple_nested": (1, (2, (3, (4,))), ()),
        "list_dict": [{"a": 1, "b": [1.5, "s"]}, {}, []],
        "set_frozenset": [{1, 2, 3}, frozenset(["x"])],
        "shared_refs": [shared, shared, (shared,)],
        "recursive_list": recursive,
        "instances": [Point(1, "two"), SlottedPair([1], {"r": 2})],
        "picklebuffer_readonly": pickle.PickleBuffer(b"read-only bytes"),
        "picklebuffer_writable": pickle.PickleBuffer(bytearray(b"writable")),
        "picklebuffer_large": pickle.PickleBuffer(bytearray(b"L" * 200000)),
        "blob_producer": Blob(b"zero-copy producer"),
        "state_setter": [Gauge(3), Gauge("high"), Gauge(None)],
        "state_setter_items": tally,
        "state_setter_recursive": selfish,
    }
    if protocol < 5:
        objects = dict((name, obj) for name, obj in objects.items()
                       if not name.startswith("picklebuffer"))
    if protocol < 2:
        # Classes with __slots__ need protocol 2 (copyreg refuses them).
        objects["instances"] = objects["instances"][:1]
    if numpy is not None:
        objects["numpy_c"] = numpy.arange(24, dtype="<i4").reshape(4, 6)
        objects["numpy_f"] = numpy.asfortranarray(
            numpy.arange(12, dtype="<f8").reshape(3, 4))
    return objects


def describe(obj, seen=None):
    """A JSON-able rendering that identifies the loaded object."""
    if seen is None:
        seen = {}
    if id(obj) in seen:
        return ["<ref>", seen[id(obj)]]
    if isinstance(obj, (list, dict, set, frozenset, tuple, Point, SlottedPair,
                        Gauge)):
        seen[id(obj)] = len(seen)
    if isinstance(obj, (Gauge, Tally)):
        state = dict(vars(obj))
        items = [describe(item, seen) for item in obj] \
            if isinstance(obj, Tally) else []
        return [type(obj).__name__, items] + [
            [key, describe(value, seen)] for key, value in sorted(state.items())]
    kind = type(obj).__name__
    if obj is None or isinstance(obj, (bool, int)):
        return [kind, obj if not isinstance(obj, int) or abs(obj) < 2 ** 53
                else str(obj)]
    if isinstance(obj, float):
        return [kind, repr(obj)]
    if isinstance(obj, complex):
        return [kind, repr(obj)]
    if isinstance(obj, str):
        return [kind, obj.encode("utf-8", "surrogatepass").hex()]
    if isinstance(obj, (bytes, bytearray)):
        return [kind, bytes(obj).hex()]
    if isinstance(obj, memoryview) or type(obj).__name__ == "PickleBuffer":
        with memoryview(obj) as view:
            return ["buffer", view.readonly, view.tobytes().hex()]
    if isinstance(obj, (list, tuple)):
        return [kind] + [describe(item, seen) for item in obj]
    if isinstance(obj, (set, frozenset)):
        return [kind] + sorted(json.dumps(describe(item, seen)) for item in obj)
    if isinstance(obj, dict):
        return [kind] + [[describe(k, seen), describe(v, seen)]
                         for k, v in obj.items()]
    if isinstance(obj, Point):
        return [kind, describe(obj.x, seen), describe(obj.y, seen)]
    if isinstance(obj, SlottedPair):
        return [kind, describe(obj.left, seen), describe(obj.right, seen)]
    if numpy is not None and isinstance(obj, numpy.ndarray):
        order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous \
            else "C"
        return [kind, str(obj.dtype), list(obj.shape), order,
                obj.tobytes(order="A").hex()]
    raise TypeError("cannot describe %r" % (obj,))


def implementation(impl):
    if impl == "c":
        import _pickle
        return _pickle.Pickler, _pickle.Unpickler
    return pickle._Pickler, pickle._Unpickler


def dump(request):
    import io
    pickler_class = implementation(request["impl"])[0]
    answer = {}
    for name, obj in sorted(corpus(request["protocol"]).items()):
        buffers = []
        out = io.BytesIO()
        kwargs = {}
        if request["oob"]:
            kwargs["buffer_callback"] = buffers.append
        pickler_class(out, request["protocol"], **kwargs).dump(obj)
        raw = []
        for buf in buffers:
            with buf.raw() as view:
                raw.append(view.tobytes().hex())
        answer[name] = {"stream": out.getvalue().hex(), "buffers": raw}
    return {"objects": answer}


def load(request):
    import io
    unpickler_class = implementation(request["impl"])[1]
    loaded = {}
    for name, item in sorted(request["objects"].items()):
        # Writable buffers, as a consumer receiving them over a socket has.
        buffers = [bytearray(bytes.fromhex(b)) for b in item["buffers"]]
        stream = io.BytesIO(bytes.fromhex(item["stream"]))
        try:
            obj = unpickler_class(stream, buffers=buffers).load()
        except Exception as exc:
            loaded[name] = ["error", type(exc).__name__, str(exc)]
            continue
        loaded[name] = describe(obj)
    return {"loaded": loaded}


def main():
    request = json.load(sys.stdin)
    handler = {"dump": dump, "load": load}[request["action"]]
    json.dump(handler(request), sys.stdout)


if __name__ == "__main__":
    main()
