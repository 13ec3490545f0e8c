"""Measure pickling in the interpreter that runs this file.

`python3 -m tools bench` runs this file by path with every interpreter it
compares (the patched build, stock CPython with and without the pickle5
backport, the newest upstream CPython), in a fresh process for each
measurement.  It must therefore run unchanged on Python 3.7 to 3.13, and
it imports only the standard library and workloads.py beside it, plus
numpy and pyperf where a scenario asks for them.

  probe                  what this interpreter's pickle offers (JSON)
  prepare SCENARIO       write the file that a load scenario reads
  memory SCENARIO        extra peak RSS and warm best-of-N time of one
                         operation on a large payload (one JSON line)
  count WORKLOAD OP N    N calls of OP (dumps, loads) on a small-object
                         workload, after the same set-up for every N: run
                         under callgrind, the difference of two N gives
                         the instructions per call
  speed [PYPERF ARGS]    the small-object workloads under pyperf

Every command takes --module (pickle, or pickle5 for the backport) and
--impl (c: the module's Pickler/Unpickler, py: its _Pickler/_Unpickler).

How peak memory is measured: the payload is built first with all its pages
written, so that it is resident; writing "5" to /proc/self/clear_refs then
sets the kernel's RSS high-water mark (VmHWM) to the current RSS; after the
operation, VmHWM minus the RSS before it is the largest amount of memory the
operation held at once, on top of the payload.  Memory the process freed
earlier but kept (the C allocator's free lists) can be reused without
raising RSS, so each measurement runs in a fresh process that has done
nothing larger than a 64 KiB warm-up before it.  The page cache used by
file writes is not the process's memory and is not counted.
"""

import argparse
import gc
import importlib
import io
import json
import os
import platform
import sys
import traceback
import types
from time import perf_counter

from workloads import OPERATIONS, WORKLOADS

# A non-ASCII text with characters outside Latin-1, so that the str is
# stored with two bytes a character and its UTF-8 form is longer.
TEXT_BLOCK = ("Stra\u00dfe \u2013 caf\u00e9 \u00e0 la carte, "
              "\u03c0 \u2248 3.14159, \u20ac 12 \u2260 \u00a3 10; "
              "\u65e5\u672c\u8a9e. ")
# A loaded non-ASCII str holds two bytes a character: its own size, in
# sizes of its UTF-8 payload, is the physical limit of loading it.
NONASCII_RESULT = 2.0 * len(TEXT_BLOCK) / len(TEXT_BLOCK.encode("utf-8"))

# name -> (title, physical limit of the extra peak RSS in payload sizes).
# Dumping to a file needs no copy at all; dumps() and load() must hold the
# result: one payload more, or the decoded str's own size.
SCENARIOS = [
    ("dump-bytearray-file", "dump bytearray to a file", 0.0),
    ("dumps-bytearray", "dumps bytearray", 1.0),
    ("dump-ascii-str-file", "dump ASCII str to a file", 0.0),
    ("dump-nonascii-str-file", "dump non-ASCII str to a file", 0.0),
    ("dumps-nonascii-str", "dumps non-ASCII str", 1.0),
    ("load-bytes-file", "load bytes from a file", 1.0),
    ("load-bytearray-file", "load bytearray from a file (BYTEARRAY8)", 1.0),
    ("load-ascii-str-file", "load ASCII str from a file", 1.0),
    ("load-nonascii-str-file", "load non-ASCII str from a file",
     NONASCII_RESULT),
    ("dump-numpy-file", "dump numpy array in-band to a file", 0.0),
    ("load-numpy-file", "load in-band numpy array from a file", 1.0),
    ("oob-picklebuffer", "out-of-band PickleBuffer round trip", 0.0),
    ("oob-numpy", "out-of-band numpy array round trip", 0.0),
]
SCENARIO_NAMES = [name for name, _, _ in SCENARIOS]
OUT_OF_BAND = ("oob-picklebuffer", "oob-numpy")
# How far above the physical limit the targets allow.
SLACK = 0.05
# Out-of-band round trips are also timed on this size, to see whether their
# time depends on the payload size.
OOB_REFERENCE_SIZE = 1 << 20
# Runs of each operation whose best time is reported; the first also
# gives the peak memory.
REPEATS = 3
SPEED_BENCHMARKS = ["%s_%s" % (op, name) for name in WORKLOADS
                    for op in OPERATIONS]
# Calls per timed loop iteration in the speed benchmarks, so that the loop
# itself costs little next to the pickling.
UNROLL = 5
# The warm-up runs each operation once on a payload of this size.
WARM_SIZE = 64 << 10


class Unsupported(Exception):
    """The interpreter cannot run the scenario: reported as "n/a"."""

    def __init__(self, short, detail):
        Exception.__init__(self, detail)
        self.short = short
        self.detail = detail


# -- the pickle implementation under test -------------------------------------

def is_c_class(cls):
    return not isinstance(vars(cls).get("dump", vars(cls).get("load")),
                          types.FunctionType)


class Impl:
    """One module's C or Python pickler, with the protocol it will use."""

    def __init__(self, module_name, kind):
        self.module_name = module_name
        self.kind = kind
        try:
            self.module = importlib.import_module(module_name)
        except ImportError as exc:
            raise Unsupported("no " + module_name,
                              "cannot import %s: %s" % (module_name, exc))
        module = self.module
        if kind == "c":
            self.pickler = module.Pickler
            self.unpickler = module.Unpickler
            if not (is_c_class(self.pickler) and is_c_class(self.unpickler)):
                raise Unsupported(
                    "no C pickler",
                    "%s.Pickler is the pure-Python class: this interpreter "
                    "has no C accelerator" % module_name)
        elif kind == "py":
            self.pickler = getattr(module, "_Pickler", None)
            self.unpickler = getattr(module, "_Unpickler", None)
            if self.pickler is None or self.unpickler is None:
                raise Unsupported(
                    "no Py pickler",
                    "%s has no _Pickler/_Unpickler" % module_name)
        else:
            raise ValueError("unknown implementation %r" % kind)
        self.protocol = self._best_protocol()
        self.picklebuffer = getattr(module, "PickleBuffer", None)

    def _best_protocol(self):
        for protocol in range(self.module.HIGHEST_PROTOCOL, 1, -1):
            try:
                self.pickler(io.BytesIO(), protocol)
            except ValueError:
                continue
            return protocol
        raise Unsupported("no protocol", "no pickle protocol >= 2 accepted")

    def out_of_band_problem(self):
        """Why out-of-band buffers cannot be used, or None."""
        if self.protocol < 5:
            return ("protocol %d" % self.protocol,
                    "the highest protocol of its pickler, %d, has no "
                    "out-of-band buffers" % self.protocol)
        if self.picklebuffer is None:
            return ("no PickleBuffer",
                    "%s has no PickleBuffer" % self.module_name)
        try:
            self.pickler(io.BytesIO(), self.protocol,
                         buffer_callback=[].append)
        except TypeError as exc:
            return ("no buffer_callback", "%s.%s: %s" % (
                self.module_name, self.pickler.__name__, exc))
        try:
            self.unpickler(io.BytesIO(b"N."), buffers=[])
        except TypeError as exc:
            return ("no buffers=", "%s.%s: %s" % (
                self.module_name, self.unpickler.__name__, exc))
        return None

    # The module-level functions of the C implementation are its own C
    # functions; for the Python classes do what pickle._dumps and friends
    # do, without relying on those private names.
    def dump(self, obj, file, **kw):
        if self.kind == "c":
            self.module.dump(obj, file, self.protocol, **kw)
        else:
            self.pickler(file, self.protocol, **kw).dump(obj)

    def dumps(self, obj, **kw):
        if self.kind == "c":
            return self.module.dumps(obj, self.protocol, **kw)
        stream = io.BytesIO()
        self.pickler(stream, self.protocol, **kw).dump(obj)
        return stream.getvalue()

    def load(self, file, **kw):
        if self.kind == "c":
            return self.module.load(file, **kw)
        return self.unpickler(file, **kw).load()

    def loads(self, data, **kw):
        if self.kind == "c":
            return self.module.loads(data, **kw)
        return self.unpickler(io.BytesIO(data), **kw).load()


def module_version(name):
    try:
        module = importlib.import_module(name)
    except Exception:
        return None
    return getattr(module, "__version__", "?")


def probe(args):
    info = {"python": platform.python_version(), "executable": sys.executable,
            "module": args.module, "impl": args.impl,
            "numpy": module_version("numpy"),
            "pyperf": module_version("pyperf"),
            "memory_method": memory_method_problem()}
    try:
        impl = Impl(args.module, args.impl)
    except Unsupported as exc:
        info.update(status="n/a", short=exc.short, reason=exc.detail)
        return info
    info.update(status="ok", protocol=impl.protocol,
                module_file=getattr(impl.module, "__file__", None),
                out_of_band=None)
    problem = impl.out_of_band_problem()
    if problem:
        info["out_of_band"] = problem[1]
    return info


# -- memory -------------------------------------------------------------------

def status_field(name):
    """A size field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                value, unit = line.split()[1:3]
                assert unit == "kB", line
                return int(value) * 1024
    raise KeyError(name)


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_method_problem():
    try:
        status_field("VmHWM")
        reset_peak()
    except (EnvironmentError, KeyError) as exc:
        return "cannot reset the RSS high-water mark: %s" % exc
    return None


def make_bytes(size):
    return b"\x5a" * size


def make_bytearray(size):
    # bytearray(size) would be zero pages that are not resident yet.
    return bytearray(b"\x5a") * size


def make_text(size, ascii_only):
    """A str whose UTF-8 form is about SIZE bytes, built in one allocation."""
    block = "All work and no play. " if ascii_only else TEXT_BLOCK
    encoded = len(block.encode("utf-8"))
    return block * max(size // encoded, 1)


def make_numpy(size):
    try:
        import numpy
    except ImportError as exc:
        raise Unsupported("no numpy", "cannot import numpy: %s" % exc)
    return numpy.full(size, 0x5a, dtype=numpy.uint8)


# name -> (what the operation pickles or loads, and its kind: a dump to a
# file, dumps, a load from a file of what a dump wrote).
PAYLOADS = {
    "bytearray": make_bytearray,
    "bytes": make_bytes,
    "ascii-str": lambda size: make_text(size, True),
    "nonascii-str": lambda size: make_text(size, False),
    "numpy": make_numpy,
}


def payload_bytes(obj):
    if isinstance(obj, str):
        return len(obj.encode("utf-8"))
    return memoryview(obj).nbytes


def same_payload(result, expected):
    if type(result) is not type(expected):
        return False
    if hasattr(expected, "tobytes"):
        return result.shape == expected.shape and \
            result.tobytes() == expected.tobytes()
    return result == expected


def pickle_path(name, impl, workdir):
    return os.path.join(workdir, "%s-%s-%s.pickle" % (
        name, impl.module_name, impl.kind))


class Case:
    """A scenario made concrete: its payload, operation and result check.

    NAME is KIND-PAYLOAD: dump (to a file), dumps or load (from a file that
    `prepare` wrote with the same implementation)."""

    def __init__(self, impl, name, size, workdir):
        self.impl = impl
        self.kind, what = name.split("-", 1)
        what = what[:-5] if what.endswith("-file") else what
        self.make = PAYLOADS[what]
        self.path = pickle_path(name, impl, workdir)
        if what in ("bytearray", "numpy") and self.kind == "load" and \
                impl.protocol < 5:
            raise Unsupported("protocol %d" % impl.protocol,
                              "no BYTEARRAY8 below protocol 5: protocol %d "
                              "loads another type" % impl.protocol)
        self.payload = self.make(size)
        self.payload_bytes = payload_bytes(self.payload)
        if self.kind == "load":
            if not os.path.exists(self.path):
                raise AssertionError("%s is missing: run `prepare` first"
                                     % self.path)
            self.expected, self.payload = self.payload, None

    def prepare(self):
        with open(self.path, "wb") as f:
            self.impl.dump(self.payload, f)

    def run(self):
        if self.kind == "dumps":
            return self.impl.dumps(self.payload)
        if self.kind == "dump":
            with open(self.path, "wb") as f:
                self.impl.dump(self.payload, f)
            return None
        with open(self.path, "rb") as f:
            return self.impl.load(f)

    def warm_up(self):
        small = self.make(WARM_SIZE)
        data = self.impl.dumps(small)
        if not same_payload(self.impl.loads(data), small):
            raise AssertionError("a %s does not round-trip" % type(small))

    def check(self, result):
        if self.kind == "load":
            if not same_payload(result, self.expected):
                raise AssertionError("load returned %s, not the %s dumped"
                                     % (type(result).__name__,
                                        type(self.expected).__name__))
            return {"pickle_bytes": os.path.getsize(self.path)}
        written = len(result) if self.kind == "dumps" else \
            os.path.getsize(self.path)
        if not self.payload_bytes <= written <= self.payload_bytes + 4096:
            raise AssertionError("wrote %d bytes for a payload of %d"
                                 % (written, self.payload_bytes))
        return {"pickle_bytes": written}


class RoundTrip(Case):
    """dumps with buffer_callback, then loads with the buffers."""

    def __init__(self, impl, name, size, workdir):
        problem = impl.out_of_band_problem()
        if problem:
            raise Unsupported(*problem)
        self.impl, self.kind, self.path = impl, "oob", None
        if name == "oob-numpy":
            self.make = make_numpy
        else:
            self.make = lambda n: impl.picklebuffer(make_bytearray(n))
        self.payload = self.make(size)
        self.payload_bytes = size

    def run(self):
        buffers = []
        data = self.impl.dumps(self.payload, buffer_callback=buffers.append)
        return self.impl.loads(data, buffers=buffers), len(data), len(buffers)

    def warm_up(self):
        buffers = []
        data = self.impl.dumps(self.make(WARM_SIZE),
                               buffer_callback=buffers.append)
        self.impl.loads(data, buffers=buffers)

    def check(self, result):
        obj, pickle_bytes, buffers = result
        view = memoryview(obj)
        if view.nbytes != self.payload_bytes or \
                view[self.payload_bytes - 1:].tobytes() != b"\x5a":
            raise AssertionError("round trip gave %r of %d bytes"
                                 % (type(obj), view.nbytes))
        view.release()
        return {"pickle_bytes": pickle_bytes, "buffers": buffers}


def make_case(name, impl, size, workdir):
    if name not in SCENARIO_NAMES:
        raise ValueError("unknown scenario %r" % name)
    cls = RoundTrip if name in OUT_OF_BAND else Case
    return cls(impl, name, size, workdir)


def prepare(args):
    """Write the input of a load scenario with the implementation itself."""
    impl = Impl(args.module, args.impl)
    if not args.scenario.startswith("load-"):
        raise ValueError("%s reads no prepared file" % args.scenario)
    case = Case(impl, "dump-" + args.scenario[5:], args.size, args.dir)
    case.path = pickle_path(args.scenario, impl, args.dir)
    case.prepare()
    return {"status": "ok", "path": case.path, "protocol": impl.protocol}


def best_time(case, repeats):
    """The best of REPEATS warm runs of the case's operation."""
    best = None
    for _ in range(repeats):
        started = perf_counter()
        outcome = case.run()
        elapsed = perf_counter() - started
        del outcome
        best = elapsed if best is None else min(best, elapsed)
    return best


def measure(args):
    result = {"scenario": args.scenario, "module": args.module,
              "impl": args.impl, "python": platform.python_version(),
              "size": args.size, "repeats": REPEATS}
    problem = memory_method_problem()
    if problem:
        raise Unsupported("no VmHWM reset", problem)
    impl = Impl(args.module, args.impl)
    result["protocol"] = impl.protocol
    case = make_case(args.scenario, impl, args.size, args.dir)
    try:
        case.warm_up()
        gc.collect()
        rss_before = status_field("VmRSS")
        reset_peak()
        outcome = case.run()
        peak = status_field("VmHWM")
        result.update(case.check(outcome))
        del outcome
        seconds = best_time(case, REPEATS)
    finally:
        if case.path and os.path.exists(case.path):
            os.unlink(case.path)
    extra = max(peak - rss_before, 0)
    size = case.payload_bytes
    result.update(
        status="ok", payload_bytes=size, rss_before=rss_before, peak=peak,
        extra_bytes=extra, extra_ratio=extra / float(size),
        best_seconds=seconds,
        mb_per_s=(size / 1e6 / seconds) if seconds > 0 else None)
    return result


# -- small objects ------------------------------------------------------------

def small_calls(impl, workload, op):
    """The call and argument of OP on WORKLOAD, checked to round-trip."""
    obj = WORKLOADS[workload]()
    data = impl.dumps(obj)
    if impl.loads(data) != obj:
        raise AssertionError("%s does not round-trip" % workload)
    return (impl.dumps, obj) if op == "dumps" else (impl.loads, data)


def count(args):
    """The same set-up for every N, so that two N give the cost of a call:
    both operations are run once, as warm-up, then OP N times."""
    impl = Impl(args.module, args.impl)
    call, arg = small_calls(impl, args.workload, args.op)
    for warm, warm_arg in (small_calls(impl, args.workload, "dumps"),
                           small_calls(impl, args.workload, "loads")):
        warm(warm_arg)
    for _ in range(args.calls):
        call(arg)
    return {"status": "ok", "protocol": impl.protocol}


def timed_calls(loops, call, argument):
    calls = range(loops)
    started = perf_counter()
    for _ in calls:
        call(argument)
        call(argument)
        call(argument)
        call(argument)
        call(argument)
    return perf_counter() - started


def speed(argv):
    import pyperf

    def forward(cmd, args):
        cmd.extend(["--module", args.module, "--impl", args.impl])

    runner = pyperf.Runner(program_args=(sys.argv[0], "speed"),
                           add_cmdline_args=forward)
    runner.argparser.add_argument("--module", default="pickle")
    runner.argparser.add_argument("--impl", choices=("c", "py"), default="c")
    args = runner.parse_args(argv)
    impl = Impl(args.module, args.impl)
    runner.metadata["pickle_protocol"] = str(impl.protocol)
    for name in SPEED_BENCHMARKS:
        op, workload = name.split("_")
        call, arg = small_calls(impl, workload, op)
        runner.bench_time_func(name, timed_calls, call, arg,
                               inner_loops=UNROLL)


# -- command line -------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Measure pickling here, for `python3 -m tools bench`.")
    commands = parser.add_subparsers(dest="command")
    for name in ("probe", "prepare", "memory", "count"):
        sub = commands.add_parser(name)
        sub.add_argument("--module", default="pickle")
        sub.add_argument("--impl", choices=("c", "py"), default="c")
        if name == "count":
            sub.add_argument("workload", choices=sorted(WORKLOADS))
            sub.add_argument("op", choices=OPERATIONS)
            sub.add_argument("calls", type=int)
        elif name != "probe":
            sub.add_argument("scenario", choices=SCENARIO_NAMES)
            sub.add_argument("--size", type=int, required=True,
                             help="payload size in bytes")
            sub.add_argument("--dir", required=True,
                             help="directory for the pickle files")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose probe, prepare, memory, count or speed")
    return args


def main(argv):
    if argv[:1] == ["speed"]:
        speed(argv[1:])
        return 0
    args = parse_args(argv)
    try:
        if args.command == "probe":
            result = probe(args)
        elif args.command == "prepare":
            result = prepare(args)
        elif args.command == "count":
            result = count(args)
        else:
            result = measure(args)
        status = 0
    except Unsupported as exc:
        result = {"status": "n/a", "short": exc.short, "reason": exc.detail}
        status = 0
    except Exception as exc:
        traceback.print_exc()
        result = {"status": "failed",
                  "reason": "%s: %s" % (type(exc).__name__, exc)}
        status = 1
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
