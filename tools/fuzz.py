"""Fuzz both unpicklers of the patched interpreter with mutated pickles.

Feeds --count mutated protocol-5 streams (seeded from our own corpus of
pickles at protocols 0-5, fuzz/corpus.py) to the C pickle.Unpickler and
the Python pickle._Unpickler, each from io.BytesIO, a file with readinto
and a file with only read, in worker processes of the line's patched
interpreter under an address space limit.  find_class resolves a small
whitelist only.  Reports crashes (the input is saved under
build/fuzz/<line>/ with the command that replays it), hangs, unraisable
errors and exception types outside the documented set; exits 1 on any.
The same --seed gives the same streams.
"""

import os
import subprocess
from pathlib import Path

from .model.workspace import interpreter


def add_arguments(parser):
    parser.add_argument("--count", default="20000", metavar="N",
                        help="mutated streams (default 20000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the campaign's random seed (default 0)")
    parser.add_argument("--limit", default="2G", metavar="SIZE",
                        help="address space limit of each worker (default 2G)")
    parser.add_argument("--timeout", default="10", metavar="SECONDS",
                        help="CPU time one load may take (default 10)")
    parser.add_argument("--jobs", default=str(os.cpu_count() or 1),
                        metavar="J",
                        help="worker processes at a time (default: CPUs)")
    parser.add_argument("--self-test", metavar="KIND", choices=(
        "struct-error", "crash", "timeout", "unraisable"),
        help="inject a finding (struct-error, crash, timeout or "
             "unraisable) into stream 1, to see the check fail")


def run(ws, line, args):
    # The campaign checks the values, and says what is wrong in one line.
    command = [interpreter(ws, line)["python"], "-m", "fuzz",
               "--count", str(args.count), "--seed", str(args.seed),
               "--limit", args.limit,
               "--timeout", args.timeout, "--jobs", args.jobs,
               "--out", str(ws.build_dir(line).parent / "fuzz" / line.name)]
    if args.self_test:
        command += ["--self-test", args.self_test]
    # The fuzz package sits beside tools/; the campaign gives its workers
    # PYTHONHASHSEED=0 and this PYTHONPATH.
    code = str(Path(__file__).resolve().parent.parent)
    return subprocess.call(command, cwd=code,
                           env=dict(os.environ, PYTHONPATH=code))
