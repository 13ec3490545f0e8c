"""Measure pickling in the interpreter that runs this file.

`python3 -m tools bench` runs this file by path with every interpreter it
compares (the patched build, stock CPython with and without the pickle5
backport, the newest upstream CPython), in a fresh process for each
measurement.  It must therefore run unchanged on Python 3.7 to 3.13, and
it imports only the standard library, plus numpy and pyperf where a
scenario asks for them.

  probe                  what this interpreter's pickle offers (JSON)
  prepare SCENARIO       write the file that a load scenario reads
  memory SCENARIO        extra peak RSS and throughput of one operation on
                         a large payload (one JSON line)
  speed [PYPERF ARGS]    small-object benchmarks under pyperf

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

import os
import sys

if __name__ == "__main__":
    # Run by path, this file's directory comes first on sys.path; the tools'
    # own modules there (test.py, build.py, ...) must not hide the stdlib's.
    _own_dir = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _own_dir:
        del sys.path[0]

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from time import perf_counter  # noqa: E402

# name -> (title, physical limit of the extra peak RSS in payload sizes).
# Dumping to a file needs no copy at all; dumps() and load() must hold the
# result, which is one payload more.
SCENARIOS = [
    ("dump-bytearray-file", "dump bytearray to a file", 0.0),
    ("dumps-bytearray", "dumps bytearray", 1.0),
    ("dump-ascii-str-file", "dump ASCII str to a file", 0.0),
    ("dump-nonascii-str-file", "dump non-ASCII str to a file", 0.0),
    ("load-bytes-file", "load bytes from a file", 1.0),
    ("oob-picklebuffer", "out-of-band PickleBuffer round trip", 0.0),
    ("oob-numpy", "out-of-band numpy array round trip", 0.0),
]
SCENARIO_NAMES = [name for name, _, _ in SCENARIOS]
OUT_OF_BAND = ("oob-picklebuffer", "oob-numpy")
NEEDS_PREPARE = ("load-bytes-file",)
# How far above the physical limit the targets allow.
SLACK = 0.05
# Out-of-band round trips are also timed on this size, to see whether their
# time depends on the payload size.
OOB_REFERENCE_SIZE = 1 << 20
# Repeats of an out-of-band round trip whose best time is reported.
OOB_REPEATS = 5

SPEED_BENCHMARKS = ["pickle_dict", "unpickle_dict", "pickle_list",
                    "unpickle_list", "pickle_str", "unpickle_str"]
# Calls per timed loop iteration in the speed benchmarks, so that the loop
# itself costs little next to the pickling.
UNROLL = 5

# A non-ASCII text with characters outside Latin-1, so that the str is
# stored with two bytes a character and its UTF-8 form is longer.
TEXT_BLOCK = ("Stra\u00dfe \u2013 caf\u00e9 \u00e0 la carte, "
              "\u03c0 \u2248 3.14159, \u20ac 12 \u2260 \u00a3 10; "
              "\u65e5\u672c\u8a9e. ")
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
    count = max(size // encoded, 1)
    return block * count, count * encoded


def file_size_check(path, payload_bytes):
    written = os.path.getsize(path)
    if not payload_bytes <= written <= payload_bytes + 4096:
        raise AssertionError("wrote %d bytes for a payload of %d"
                             % (written, payload_bytes))
    return {"pickle_bytes": written}


class Case:
    """A scenario made concrete: its payload, operation and result check."""

    payload = None
    payload_bytes = 0

    def payload_memory(self):
        """What the payload object takes in memory."""
        if self.payload is None:
            return self.payload_bytes
        return sys.getsizeof(self.payload)

    def warm_up(self):
        pass

    def run(self):
        raise NotImplementedError

    def check(self, result):
        return {}


class DumpToFile(Case):
    def __init__(self, impl, path, size, make):
        self.impl, self.path, self.make = impl, path, make
        self.payload, self.payload_bytes = make(size)

    def dump(self, obj):
        with open(self.path, "wb") as f:
            self.impl.dump(obj, f)

    def warm_up(self):
        self.dump(self.make(WARM_SIZE)[0])

    def run(self):
        self.dump(self.payload)

    def check(self, result):
        return file_size_check(self.path, self.payload_bytes)


def bytearray_payload(size):
    return make_bytearray(size), size


def ascii_payload(size):
    return make_text(size, ascii_only=True)


def text_payload(size):
    return make_text(size, ascii_only=False)


class DumpsBytearray(Case):
    def __init__(self, impl, size):
        self.impl = impl
        self.payload, self.payload_bytes = make_bytearray(size), size

    def warm_up(self):
        self.impl.dumps(make_bytearray(WARM_SIZE))

    def run(self):
        return self.impl.dumps(self.payload)

    def check(self, result):
        if not self.payload_bytes <= len(result) <= self.payload_bytes + 4096:
            raise AssertionError("dumps gave %d bytes for a payload of %d"
                                 % (len(result), self.payload_bytes))
        return {"pickle_bytes": len(result)}


class LoadBytes(Case):
    def __init__(self, impl, path, size):
        self.impl, self.path, self.payload_bytes = impl, path, size
        if not os.path.exists(path):
            raise AssertionError("%s is missing: run `prepare` first" % path)

    def warm_up(self):
        warm = self.path + ".warm"
        try:
            with open(warm, "wb") as f:
                self.impl.dump(make_bytes(WARM_SIZE), f)
            with open(warm, "rb") as f:
                self.impl.load(f)
        finally:
            os.unlink(warm)

    def run(self):
        with open(self.path, "rb") as f:
            return self.impl.load(f)

    def check(self, result):
        if type(result) is not bytes or len(result) != self.payload_bytes or \
                result.count(b"\x5a") != self.payload_bytes:
            raise AssertionError("load returned %s of %d items, not the %d "
                                 "bytes dumped" % (type(result).__name__,
                                                   len(result),
                                                   self.payload_bytes))
        return {"pickle_bytes": os.path.getsize(self.path)}


class RoundTrip(Case):
    """dumps with buffer_callback, then loads with the buffers."""

    def __init__(self, impl, size, numpy_array):
        problem = impl.out_of_band_problem()
        if problem:
            raise Unsupported(*problem)
        self.impl = impl
        self.numpy_array = numpy_array
        if numpy_array:
            try:
                import numpy
            except ImportError as exc:
                raise Unsupported("no numpy", "cannot import numpy: %s" % exc)
            self.numpy = numpy
        self.payload = self.make(size)
        self.payload_bytes = size

    def payload_memory(self):
        return self.payload_bytes

    def make(self, size):
        if self.numpy_array:
            return self.numpy.full(size, 0x5a, dtype=self.numpy.uint8)
        return self.impl.picklebuffer(make_bytearray(size))

    def round_trip(self, obj):
        buffers = []
        data = self.impl.dumps(obj, buffer_callback=buffers.append)
        return self.impl.loads(data, buffers=buffers), len(data), len(buffers)

    def warm_up(self):
        self.round_trip(self.make(WARM_SIZE))

    def run(self):
        return self.round_trip(self.payload)

    def check(self, result):
        obj, pickle_bytes, buffers = result
        view = memoryview(obj)
        if view.nbytes != self.payload_bytes or \
                view[self.payload_bytes - 1:].tobytes() != b"\x5a":
            raise AssertionError("round trip gave %r of %d bytes"
                                 % (type(obj), view.nbytes))
        view.release()
        best = None
        for _ in range(OOB_REPEATS):
            started = perf_counter()
            again = self.round_trip(self.payload)
            elapsed = perf_counter() - started
            del again
            best = elapsed if best is None else min(best, elapsed)
        return {"pickle_bytes": pickle_bytes, "buffers": buffers,
                "best_seconds": best}


def pickle_path(name, impl, workdir):
    return os.path.join(workdir, "%s-%s-%s.pickle" % (
        name, impl.module_name, impl.kind))


def make_case(name, impl, size, workdir):
    path = pickle_path(name, impl, workdir)
    if name == "dump-bytearray-file":
        return DumpToFile(impl, path, size, bytearray_payload)
    if name == "dump-ascii-str-file":
        return DumpToFile(impl, path, size, ascii_payload)
    if name == "dump-nonascii-str-file":
        return DumpToFile(impl, path, size, text_payload)
    if name == "dumps-bytearray":
        return DumpsBytearray(impl, size)
    if name == "load-bytes-file":
        return LoadBytes(impl, path, size)
    if name == "oob-picklebuffer":
        return RoundTrip(impl, size, numpy_array=False)
    if name == "oob-numpy":
        return RoundTrip(impl, size, numpy_array=True)
    raise ValueError("unknown scenario %r" % name)


def prepare(args):
    """Write the input of a load scenario with the implementation itself."""
    if args.scenario not in NEEDS_PREPARE:
        raise ValueError("%s reads no prepared file" % args.scenario)
    impl = Impl(args.module, args.impl)
    path = pickle_path(args.scenario, impl, args.dir)
    with open(path, "wb") as f:
        impl.dump(make_bytes(args.size), f)
    return {"status": "ok", "path": path, "protocol": impl.protocol}


def measure(args):
    result = {"scenario": args.scenario, "module": args.module,
              "impl": args.impl, "python": platform.python_version(),
              "size": args.size}
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
        started = perf_counter()
        outcome = case.run()
        seconds = perf_counter() - started
        peak = status_field("VmHWM")
        extra = max(peak - rss_before, 0)
        result.update(case.check(outcome))
        del outcome
    finally:
        path = getattr(case, "path", None)
        if path and os.path.exists(path):
            os.unlink(path)
    size = case.payload_bytes
    result.update(
        status="ok", payload_bytes=size,
        payload_memory=case.payload_memory(),
        rss_before=rss_before, peak=peak, extra_bytes=extra,
        extra_ratio=extra / float(size), seconds=seconds,
        mb_per_s=(size / 1e6 / seconds) if seconds > 0 else None)
    return result


# -- speed --------------------------------------------------------------------

def small_objects():
    """Three workloads of many small objects: a dict, a list, strings."""
    words = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet",
             "heath", "indigo", "jasper"]
    record = {}
    for i in range(60):
        word = words[i % len(words)]
        record["%s_%02d" % (word, i)] = (
            i * 37, word.upper(), i / 8.0, [i, -i], i % 3 == 0, None)
    rows = [[i, words[i % 10], i * 1.5, (i % 2 == 0), i - 1000]
            for i in range(40)]
    strings = []
    for i in range(120):
        word = words[i % len(words)]
        if i % 4 == 0:
            strings.append("%s \u00e9t\u00e9 %d" % (word, i))
        elif i % 4 == 1:
            strings.append("\u2192 %s-%d \u2190" % (word, i))
        else:
            strings.append("%s-%d-%s" % (word, i, word[::-1]))
    return {"dict": record, "list": rows, "str": strings}


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
        for name in args.bench or ():
            cmd.extend(["--bench", name])

    runner = pyperf.Runner(program_args=(sys.argv[0], "speed"),
                           add_cmdline_args=forward)
    parser = runner.argparser
    parser.add_argument("--module", default="pickle")
    parser.add_argument("--impl", choices=("c", "py"), default="c")
    parser.add_argument("--bench", action="append",
                        choices=SPEED_BENCHMARKS,
                        help="run only this benchmark (repeatable)")
    args = runner.parse_args(argv)
    impl = Impl(args.module, args.impl)
    runner.metadata["pickle_module"] = args.module
    runner.metadata["pickle_impl"] = args.impl
    runner.metadata["pickle_protocol"] = str(impl.protocol)
    objects = small_objects()
    for name in SPEED_BENCHMARKS:
        if args.bench and name not in args.bench:
            continue
        action, kind = name.split("_")
        obj = objects[kind]
        if action == "pickle":
            runner.bench_time_func(name, timed_calls, impl.dumps, obj,
                                   inner_loops=UNROLL)
        else:
            data = impl.dumps(obj)
            if impl.loads(data) != obj:
                raise AssertionError("%s does not round-trip" % kind)
            runner.bench_time_func(name, timed_calls, impl.loads, data,
                                   inner_loops=UNROLL)


# -- command line -------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Measure pickling here, for `python3 -m tools bench`.")
    commands = parser.add_subparsers(dest="command")
    for name in ("probe", "prepare", "memory"):
        sub = commands.add_parser(name)
        sub.add_argument("--module", default="pickle")
        sub.add_argument("--impl", choices=("c", "py"), default="c")
        if name != "probe":
            sub.add_argument("scenario", choices=SCENARIO_NAMES)
            sub.add_argument("--size", type=int, required=True,
                             help="payload size in bytes")
            sub.add_argument("--dir", required=True,
                             help="directory for the pickle files")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose probe, prepare, memory or speed")
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
