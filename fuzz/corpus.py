"""The seed corpus: pickles of our own objects at protocols 0 to 5.

The classes below are the only user classes the fuzz driver's
find_class resolves.  Seeds are rebuilt from code in every process, so
the corpus needs PYTHONHASHSEED fixed (sets pickle in hash order).
"""

import os
import pickle
import pickletools
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Point(object):
    """Reduced by __reduce__ to a call with positional arguments."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __reduce__(self):
        return Point, (self.x, self.y)


class Plain(object):
    """Default reduction: NEWOBJ (or copyreg._reconstructor) and BUILD."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)


class Slotted(object):
    """State as (None, slots), the two-item BUILD form."""
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left, self.right = left, right


class NewArgs(object):
    """NEWOBJ with arguments, and a __setstate__."""

    def __new__(cls, size):
        self = object.__new__(cls)
        self.size = size
        return self

    def __getnewargs__(self):
        return (self.size,)

    def __getstate__(self):
        return {"size": self.size, "tag": "newargs"}

    def __setstate__(self, state):
        self.__dict__.update(state)


class NewArgsEx(object):
    """NEWOBJ_EX: keyword arguments to __new__ (protocol 4+)."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args, self.kwargs = args, kwargs
        return self

    def __getnewargs_ex__(self):
        return self.args, self.kwargs


def set_gauge_state(obj, state):
    """A state_setter (bpo-35900): the sixth item of a reduce value."""
    obj.__dict__.update(state)


class Gauge(object):
    def __init__(self, level):
        self.level = level

    def __reduce__(self):
        return Gauge, (0,), {"level": self.level}, None, None, set_gauge_state


class Tally(list):
    """List items (the fourth reduce item) and a state_setter."""

    def __reduce__(self):
        return (Tally, (), {"note": getattr(self, "note", None)}, iter(self),
                None, set_gauge_state)


class Registry(dict):
    """Dict items, the fifth reduce item."""

    def __reduce__(self):
        return Registry, (), None, None, iter(self.items())


class Blob(bytearray):
    """A PEP 574 producer: its memory goes out of band at protocol 5."""

    def __reduce_ex__(self, protocol):
        if protocol >= 5:
            return Blob, (pickle.PickleBuffer(self),)
        return Blob, (bytes(self),)


CLASSES = (Point, Plain, Slotted, NewArgs, NewArgsEx, Gauge, Tally,
           Registry, Blob, set_gauge_state)


def interop_objects(protocol):
    """The interop corpus of tests/ (its classes live in interop_agent)."""
    tests = os.path.join(os.path.dirname(HERE), "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    try:
        import interop_agent
    except ImportError:
        return {}
    return dict((name, obj) for name, obj in
                interop_agent.corpus(protocol).items()
                if not name.startswith("numpy"))


def objects(protocol):
    """Name -> object; names end in "@oob" for out-of-band pickling."""
    recursive = [1]
    recursive.append(recursive)
    cyclic = {"name": "cycle"}
    cyclic["self"] = cyclic
    shared = ["shared", 1.5]
    node = Plain(name="node")
    node.me = node
    tally = Tally([1, "two", b"3"])
    tally.note = "counted"
    out = {
        "ints": [0, 1, -1, 127, 128, 255, 256, -256, 65535, 65536, 2 ** 31 - 1,
                 2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 63, 2 ** 64, -2 ** 64,
                 2 ** 1000, -(7 ** 400), 10 ** 2000],
        "floats": [0.0, -0.0, 1.5, -1e-300, 1e308, float("inf"),
                   float("-inf"), float("nan")],
        "complex": [complex(1, -2.5), True, False, None],
        "bytes": [b"", b"\x00", bytes(range(256)), b"x" * 300,
                  b"\xff" * 70000],
        "bytearray": [bytearray(), bytearray(b"ab"), bytearray(range(256)),
                      bytearray(b"y" * 70000)],
        "str": ["", "a", "ascii" * 60, "caf\u00e9", "\u4e2d\u6587" * 100,
                "\U0001f40d snake", "lone \udc80 \ud800 surrogates",
                "z" * 70000, "\u00e9\u20ac\U0001f600" * 30000],
        "containers": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], [[]],
                       {}, {"k": "v", 1: (2, 3)}, set(), {1, "two", 3.0},
                       frozenset(), frozenset(["x", b"y"]),
                       {frozenset([1]): [set([2])]}],
        "nested": [[[[(i, {"d": [i] * 3})] for i in range(5)]]],
        "deep": [[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]],
        "recursive": [recursive, cyclic, node, (recursive, [recursive])],
        "memo": [shared] * 50 + [(shared, str(i), shared) for i in range(300)],
        "globals": [set, frozenset, bytearray, list, dict, Point, Gauge,
                    set_gauge_state],
        "reduce": [Point(1, "two"), Point(Point(3, 4), None),
                   Plain(a=1, b=[2, 3]), Slotted([1], {"r": 2}),
                   NewArgs(12), Registry(a=1, b=[2]), tally,
                   Gauge(3), Gauge("high"), Blob(b"inband blob")],
    }
    if protocol >= 4:
        out["newobj_ex"] = [NewArgsEx(1, 2, key="value"), NewArgsEx()]
    if protocol < 2:
        # copyreg refuses __slots__ without __getstate__ below protocol 2.
        out["reduce"] = [o for o in out["reduce"]
                         if not isinstance(o, Slotted)]
    if protocol >= 5:
        out["buffers@oob"] = [
            pickle.PickleBuffer(b"readonly out of band"),
            pickle.PickleBuffer(bytearray(b"writable out of band")),
            pickle.PickleBuffer(bytearray(b"L" * 70000)),
            Blob(b"producer out of band"), b"in band bytes"]
        out["buffers_inband"] = [pickle.PickleBuffer(b"ro in band"),
                                 pickle.PickleBuffer(bytearray(b"rw in band"))]
    for name, obj in interop_objects(protocol).items():
        out["interop_" + name] = obj
    return out


def unframed(data):
    """DATA without its FRAME opcodes (an unframed protocol 4/5 stream)."""
    pieces, last = [], 0
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name == "FRAME":
            pieces.append(data[last:pos])
            last = pos + 9
    pieces.append(data[last:])
    return b"".join(pieces)


def as_protocol_5(data):
    """The stream with a PROTO 5 header (PROTO 2-4 rewritten, 0-1 prefixed)."""
    if data[:1] == b"\x80":
        return b"\x80\x05" + data[2:]
    return b"\x80\x05" + data


class Seed(object):
    __slots__ = ("name", "data", "buffers", "ops")

    def __init__(self, name, data, buffers):
        self.name, self.data, self.buffers = name, data, buffers
        # (start, argument start, end, opcode name) of every opcode.
        self.ops = []
        ops = list(pickletools.genops(data))
        for i, (opcode, arg, pos) in enumerate(ops):
            end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
            self.ops.append((pos, pos + 1, end, opcode.name))


def seeds():
    """Every seed, in a fixed order, as protocol 5 streams."""
    out = []
    for protocol in range(6):
        for name, obj in sorted(objects(protocol).items()):
            buffers = []
            callback = buffers.append if name.endswith("@oob") else None
            kwargs = {"buffer_callback": callback} if callback else {}
            data = pickle.dumps(obj, protocol, **kwargs)
            raw = [(bytes(b.raw()), b.raw().readonly) for b in buffers]
            label = "%s/p%d" % (name, protocol)
            out.append(Seed(label, as_protocol_5(data), raw))
            if protocol >= 4 and b"\x95" in data[:3]:
                out.append(Seed(label + "/unframed",
                                as_protocol_5(unframed(data)), raw))
    return out
