"""The fuzz worker: feeds streams to both unpicklers, one line each.

    python -m fuzz.driver --seed S --start A --stop B [--limit BYTES]
    python -m fuzz.driver --seed S --replay N [--unpickler U --source S]
    python -m fuzz.driver --seed S --dump N > stream.pickle
    python -m fuzz.driver --file PATH [--unpickler U --source S]

Output of a run, one line per attempt, in a fixed order (stream,
unpickler, source): "A <stream> <unpickler> <source> <outcome> <class>"
where class is ok, doc (documented) or undoc, then the message (JSON)
for undoc.  "U <stream> <unpickler> <source> <text>" is an unraisable
error.  The campaign infers which attempt a dead worker was in from the
last line it got.  It needs PYTHONHASHSEED=0 (sets in the corpus).
"""

import argparse
import gc
import io
import json
import os
import pickle
import signal
import struct
import sys

from fuzz import corpus, mutate

UNPICKLERS = ("C", "py")
SOURCES = ("bytesio", "readinto", "read")

# The exception types the unpicklers may raise on bad data.  The pickle
# docs name UnpicklingError and say "other exceptions may also be raised,
# including (but not necessarily limited to) AttributeError, EOFError,
# ImportError, and IndexError".  The rest are legitimate for the data:
DOCUMENTED = (
    pickle.UnpicklingError,  # includes the whitelist's refusals below
    AttributeError, EOFError, ImportError, IndexError,  # the docs' list
    # A whitelisted constructor given bad values: int("x") of a text
    # LONG, float("?"), range(0, 1, 0), str/bytes decoding of text opcodes
    # (UnicodeDecodeError is a ValueError), 3.11+'s int digit limit.
    ValueError,
    # Wrong argument types to whitelisted callables and __setstate__, an
    # unhashable set member or dict key, BUILD on an immutable object.
    TypeError,
    # KeyError: a memo GET of an index never PUT, dict items of a
    # Registry; LookupError: an unknown codec name given to _codecs.encode.
    LookupError,
    # A length or argument beyond what a C integer holds.
    OverflowError,
    # A forged length under the address-space limit: what it exists for.
    MemoryError,
    # Nesting deeper than the interpreter's recursion limit (repr, set).
    RecursionError,
)
# Never acceptable, even where a subclass relation would let them in.
FORBIDDEN = (struct.error, SystemError)


def whitelist():
    """(module, name) -> object: everything find_class may return.  Never
    the default find_class: a mutated stream could name os.system."""
    import _codecs
    import builtins
    import copyreg
    allowed = {}
    for name in ("set", "frozenset", "list", "dict", "tuple", "bytearray",
                 "bytes", "int", "float", "complex", "str", "bool", "object",
                 "slice", "range"):
        for module in ("builtins", "__builtin__"):  # protocol 0-2 spelling
            allowed[module, name] = getattr(builtins, name)
    for module in ("copyreg", "copy_reg"):
        allowed[module, "_reconstructor"] = copyreg._reconstructor
    allowed["_codecs", "encode"] = _codecs.encode  # bytes at protocol < 3
    for obj in corpus.CLASSES:
        allowed["fuzz.corpus", obj.__name__] = obj
    agent = sys.modules.get("interop_agent")
    for name in ("Point", "SlottedPair", "Blob", "Gauge", "Tally",
                 "restore_state"):
        if agent is not None and hasattr(agent, name):
            allowed["interop_agent", name] = getattr(agent, name)
    return allowed


ALLOWED = {}


def state_of(obj):
    """What a stream can change of a whitelisted class or function: BUILD
    with slot state does setattr() on whatever object it is given."""
    names = ("__dict__", "__defaults__", "__kwdefaults__")
    return [(name, dict(getattr(obj, name)) if name == "__dict__"
             else getattr(obj, name, None)) for name in names
            if hasattr(obj, name)]


def restore(obj, state):
    for name, value in state:
        if name != "__dict__":
            if getattr(obj, name) is not value:
                setattr(obj, name, value)
            continue
        now = obj.__dict__
        if len(now) == len(value) and all(
                now.get(key, now) is item for key, item in value.items()):
            continue
        for key in [key for key in now if key not in value]:
            delattr(obj, key)
        for key, item in value.items():
            if now.get(key, now) is not item:
                setattr(obj, key, item)


def restricted(base):
    class Restricted(base):
        def find_class(self, module, name):
            try:
                return ALLOWED[module, name]
            except (KeyError, TypeError):
                raise pickle.UnpicklingError(
                    "global %r.%r is not in the fuzz whitelist"
                    % (module, name)) from None
    return Restricted


class ReadintoFile(object):
    """A file with read, readinto and readline but no peek."""

    def __init__(self, data):
        self._f = io.BytesIO(data)
        self.read, self.readline = self._f.read, self._f.readline
        self.readinto = self._f.readinto


class ReadFile(object):
    """A file with only read and readline: the copying read paths."""

    def __init__(self, data):
        self._f = io.BytesIO(data)
        self.read, self.readline = self._f.read, self._f.readline


FILES = {"bytesio": io.BytesIO, "readinto": ReadintoFile, "read": ReadFile}


class Capture(object):
    """sys.stderr of a worker, where unraisable errors are printed."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass


class Driver(object):
    def __init__(self, seed, self_test=None):
        global ALLOWED
        self.seed = seed
        self.seeds = corpus.seeds()
        ALLOWED = whitelist()
        # So that a stream cannot change how later ones load.
        self.pristine = [(obj, state_of(obj)) for (module, name), obj
                         in sorted(ALLOWED.items())
                         if module not in ("builtins", "__builtin__")]
        self.classes = {"C": restricted(pickle.Unpickler),
                        "py": restricted(pickle._Unpickler)}
        # A seed the whitelist cannot load (a method pickled through
        # getattr) would only test the whitelist's refusal.
        every = len(self.seeds)
        self.seeds = [s for s in self.seeds if self.loads_cleanly(s)]
        self.dropped = every - len(self.seeds)
        self.pairs = mutate.sweep(self.seeds)
        self.self_test = self_test
        self.unraisable = []
        if hasattr(sys, "unraisablehook"):  # 3.8+
            sys.unraisablehook = self.hook
        # 3.7 prints unraisable errors to sys.stderr, and some C code
        # (bytearray's dealloc) calls PyErr_Print on every version.
        self.capture = sys.stderr = Capture()
        gc.collect()
        gc.freeze()  # the corpus: no need to traverse it again

    def hook(self, unraisable):
        self.unraisable.append("Exception ignored in: %r: %s: %s" % (
            unraisable.object, type(unraisable.exc_value).__name__,
            unraisable.exc_value))

    def loads_cleanly(self, seed):
        for cls in self.classes.values():
            try:
                cls(io.BytesIO(seed.data), buffers=self.buffers(seed)).load()
            except Exception:
                return False
        return True

    @staticmethod
    def buffers(seed):
        if not seed.buffers:
            return None
        return [bytes(b) if readonly else bytearray(b)
                for b, readonly in seed.buffers]

    def stream(self, index):
        return mutate.stream(self.seeds, self.pairs, self.seed, index)

    def attempt(self, index, unpickler, source, data, seed):
        """(outcome, documented, message) of one load."""
        try:
            if self.self_test and index == 1 and unpickler == "py":
                self.inject()
            self.classes[unpickler](FILES[source](data),
                                    buffers=self.buffers(seed)).load()
        except FORBIDDEN as exc:
            return type(exc), "undoc", str(exc)[:300]
        except DOCUMENTED as exc:
            return type(exc), "doc", None
        except Exception as exc:
            return type(exc), "undoc", str(exc)[:300]
        finally:
            for obj, state in self.pristine:
                restore(obj, state)
        return None, "ok", None

    def inject(self):
        """--self-test: the findings the check must report."""
        kind = self.self_test
        if kind == "struct-error":
            raise struct.error("injected by --self-test")
        if kind == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if kind == "timeout":
            while True:  # burns CPU time, as a real hang would
                pass
        if kind == "unraisable":
            class Noisy(object):
                def __del__(self):
                    raise ValueError("injected by --self-test")
            Noisy()

    def unraisables(self):
        found, self.unraisable = self.unraisable, []
        if self.capture.parts:
            # Nothing else writes to stderr here: any text is an error
            # that was printed instead of raised.
            found.append("".join(self.capture.parts))
            self.capture.parts = []
        return found

    def run(self, start, stop, skip, timeout, out):
        for index in range(start, stop):
            data, seed, how = self.stream(index)
            for unpickler in UNPICKLERS:
                for source in SOURCES:
                    if skip > 0:
                        skip -= 1
                        continue
                    # CPU time, not wall time, so that a loaded machine
                    # makes no false hangs; SIGPROF's default action
                    # ends the worker, even inside C code.
                    signal.setitimer(signal.ITIMER_PROF, timeout)
                    kind, verdict, message = self.attempt(
                        index, unpickler, source, data, seed)
                    gc.collect(0)
                    signal.setitimer(signal.ITIMER_PROF, 0)
                    name = "-" if kind is None else kind.__name__
                    if kind is not None and kind.__module__ != "builtins":
                        name = kind.__module__ + "." + kind.__name__
                    line = "A %d %s %s %s %s" % (index, unpickler, source,
                                                 name, verdict)
                    if message is not None:
                        line += " " + json.dumps(message)
                    for text in self.unraisables():
                        line += "\nU %d %s %s %s" % (
                            index, unpickler, source, json.dumps(text))
                    # Before the next attempt, which may kill us: the
                    # campaign blames the attempt after the last line.
                    out.write(line + "\n")
                    out.flush()


def limit_memory(limit):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def replay(driver, index, data, seed, args):
    pairs = [(u, s) for u in UNPICKLERS for s in SOURCES
             if args.unpickler in (None, u) and args.source in (None, s)]
    limit_memory(args.limit)
    for unpickler, source in pairs:
        print("%s %s:" % (unpickler, source), end=" ", flush=True)
        kind, verdict, message = driver.attempt(index, unpickler, source,
                                                data, seed)
        print("loaded" if kind is None else "%s.%s (%s) %s" % (
            kind.__module__, kind.__name__, verdict, message or ""))
        for text in driver.unraisables():
            print("  unraisable: " + text.strip())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fuzz.driver")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=0)
    parser.add_argument("--skip", type=int, default=0,
                        help="attempts of the first stream already done")
    parser.add_argument("--limit", type=int, default=2 << 30)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--self-test", choices=(
        "struct-error", "crash", "timeout", "unraisable"))
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dump", type=int, metavar="N")
    what.add_argument("--replay", type=int, metavar="N")
    what.add_argument("--file", metavar="PATH")
    parser.add_argument("--unpickler", choices=UNPICKLERS)
    parser.add_argument("--source", choices=SOURCES)
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        parser.error("run with PYTHONHASHSEED=0 (the corpus has sets)")
    driver = Driver(args.seed, args.self_test)
    if args.dump is not None:
        sys.stdout.buffer.write(driver.stream(args.dump)[0])
    elif args.replay is not None:
        data, seed, how = driver.stream(args.replay)
        print("stream %d: %s of seed %s, %d bytes: %r" % (
            args.replay, how, seed.name, len(data), data[:120]))
        replay(driver, args.replay, data, seed, args)
    elif args.file is not None:
        with open(args.file, "rb") as f:
            replay(driver, -1, f.read(), corpus.Seed("file", b"", []), args)
    else:
        limit_memory(args.limit)
        print("R %d %d %d" % (len(driver.seeds), driver.dropped,
                              len(driver.pairs)), flush=True)
        driver.run(args.start, args.stop, args.skip, args.timeout, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
