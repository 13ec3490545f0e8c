"""Run CPython's pickle tests (regrtest) on the patched interpreter.

  test                  test_pickle, test_pickletools and test_picklebuffer,
                        and on a full build the tests of the core types
                        the series changes (test_bytes, test_memoryview)
  test --bigmem SIZE    also run the bigmem tests that fit in SIZE (-M SIZE)
  test --refleaks       run them with -R 3:3 on the --with-pydebug build,
                        building it first when there is none
  test -- ARGS...       pass further arguments to regrtest (-v, -m PATTERN)

When the interpreter has no C accelerator (an overlay build without a
source base), the tests of the C implementation are skipped and the
summary says how to get them.
"""

import subprocess
import sys
from pathlib import Path

from .model.errors import Failure, UsageError
from .model.workspace import CORE_TESTS, PICKLE_TESTS, interpreter, parse_size


def add_arguments(parser):
    parser.add_argument("--bigmem", metavar="SIZE",
                        help="memory limit for bigmem tests, e.g. 4G or 8G")
    parser.add_argument("--refleaks", action="store_true",
                        help="hunt reference leaks (-R 3:3) on a debug build")
    parser.add_argument("--tests", nargs="+", metavar="TEST",
                        help="regrtest modules to run (default: %s, and %s "
                             "on a full build)" % (" ".join(PICKLE_TESTS),
                                                   " ".join(CORE_TESTS)))
    parser.add_argument("regrtest_args", nargs="*", metavar="ARGS",
                        help="further regrtest arguments, after --")


def run(ws, line, args):
    record = (debug_interpreter(ws, line) if args.refleaks
              else interpreter(ws, line))
    command = [record["python"], "-m", "test", "--slowest"]
    if args.bigmem:
        command += ["-M", parse_size(args.bigmem, "--bigmem")[0]]
    if args.refleaks:
        command += ["-R", "3:3"]
    full = record["mode"] == "full"
    tests = args.tests or PICKLE_TESTS + (CORE_TESTS if full else [])
    command += args.regrtest_args + tests
    print("running: " + " ".join(command), flush=True)
    proc = subprocess.run(command)
    rebuild = ("Import a source tree and rebuild to run them: python3 -m "
               "tools base import PATH && python3 -m tools build")
    if args.tests is None and not full:
        print("SKIPPED: %s: the series' changes to bytearray and memoryview "
              "are in the core, which an %s build does not compile. %s"
              % (", ".join(CORE_TESTS), record["mode"], rebuild))
    if not record["c_accelerator"]:
        print("SKIPPED: the tests of the C implementation (C pickler classes, "
              "_pickle refleak checks): this %s build of CPython %s has no C "
              "accelerator. %s" % (record["mode"], line.name, rebuild))
    if proc.returncode != 0:
        raise Failure("regrtest failed on %s (exit status %d)"
                      % (record["python"], proc.returncode))
    return 0


def debug_interpreter(ws, line):
    try:
        return interpreter(ws, line, debug=True)
    except UsageError:
        print("no debug build yet: building one (python3 -m tools build "
              "--debug)", flush=True)
    # The build verb, as the user would run it: verbs do not import verbs.
    proc = subprocess.run([sys.executable, "-m", "tools", "build", "--debug",
                           "--base", line.name, "--workspace", str(ws.root),
                           "--cache-dir", str(ws.cache)],
                          cwd=str(Path(__file__).resolve().parent.parent))
    if proc.returncode != 0:
        raise Failure("the debug build failed (exit status %d)"
                      % proc.returncode)
    return interpreter(ws, line, debug=True)
