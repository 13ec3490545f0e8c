"""Measure memory and speed of pickling, patched against stock CPython.

  bench                  the large-payload scenarios at --size 512M, then
                         the small-object workloads: instructions per call
                         under callgrind where valgrind exists, else pyperf
  bench --quick          a 64 MiB payload and fewer calls
  bench --only memory    only the large-payload scenarios (or: speed)
  bench --wall           pyperf wall clock even where valgrind exists
  bench --size 2G        another payload size; sizes over 512 MiB wait for
                         /tmp/bigmem.lock, which heavy runs share
  bench --publish        also put the table into README.md, between
                         <!-- bench <line> --> and <!-- end bench <line> -->

Each measurement runs benchmarks/pickle_scenarios.py in a fresh process of
each interpreter compared (README.md, "Measuring", lists them); those
other than the patched one run in venvs under build/bench/venvs/ made
from requirements/bench-*.txt.  The issue's targets are printed beside the
numbers and marked "!" where a patched column misses them; nothing is
asserted.  A scenario an interpreter cannot run is "n/a (reason)".
Results, per line, in build/bench/<line>/: table.txt, results.json,
memory.png and speed.png (with matplotlib), speed/ (pyperf) and logs/.
"""

import datetime
import functools
import json
import time

from benchmarks import compare, report

from .model.errors import Failure, UsageError
from .model.workspace import base_option, interpreter, parse_size

DEFAULT_SIZE = 512 * compare.MIB
QUICK_SIZE = 64 * compare.MIB
MIN_SIZE = 2 * compare.MIB


def add_arguments(parser):
    parser.add_argument("--size", metavar="SIZE",
                        help="payload size, e.g. 512M or 2G (default 512M; "
                             "64M with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller payload, fewer calls")
    parser.add_argument("--only", choices=("memory", "speed"),
                        help="run only the memory scenarios or only the "
                             "small-object workloads")
    parser.add_argument("--wall", action="store_true",
                        help="time the small objects with pyperf even "
                             "where valgrind exists")
    parser.add_argument("--publish", action="store_true",
                        help="also put the table into README.md")


def payload_size(text):
    size = parse_size(text, "--size", "512M or 2G")[1]
    if size < MIN_SIZE:
        raise UsageError("--size %s is below the smallest useful payload, "
                         "%s" % (text, compare.human_size(MIN_SIZE)))
    return size


def command_line(line, args):
    words = ["python3", "-m", "tools", "bench"] + base_option(line).split()
    words += ["--quick"] if args.quick else []
    words += ["--size", args.size] if args.size else []
    words += ["--only", args.only] if args.only else []
    words += ["--wall"] if args.wall else []
    return " ".join(words)


def run(ws, line, args):
    started = time.time()
    if args.publish:
        # Before the run, so that a missing marker does not waste it.
        readme_section(ws, line)
    size = payload_size(args.size) if args.size else (
        QUICK_SIZE if args.quick else DEFAULT_SIZE)
    patched = interpreter(ws, line)["python"]
    # One per line, so that benching 3.13 keeps the 3.7 results.
    directory = ws.root / "build" / "bench" / line.name
    out = functools.partial(print, flush=True)
    doc, compared = compare.measure(ws, line, patched, directory, size,
                                    args.only, args.wall, args.quick, out)
    stamp = datetime.datetime.fromtimestamp(started)
    doc.update(command=command_line(line, args),
               started=stamp.isoformat(timespec="seconds"))
    failures = report.failures(doc)
    problem = report.plot(doc, directory)
    doc["wall_seconds"] = round(time.time() - started, 1)
    table = report.format_table(doc)
    (directory / "results.json").write_text(
        json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (directory / "table.txt").write_text(table + "\n")
    out("\n" + table + ("\n\npyperf compare_to:\n" + compared
                        if compared else "") + "\n")
    out("results: %s (table.txt, results.json, *.png)" % directory)
    for note in doc["notes"] + ([problem] if problem else []):
        out("note: " + note)
    out("wall time: %dm%02ds" % divmod(int(doc["wall_seconds"]), 60))
    if failures:
        raise Failure("%d measurement(s) failed, the first: %s"
                      % (len(failures), failures[0]))
    if args.publish:
        publish(ws, line, doc, table)
    return 0


def readme_section(ws, line):
    """README.md's text and the span between the bench markers of line."""
    readme = ws.root / "README.md"
    begin = "<!-- bench %s -->" % line.name
    end = "<!-- end bench %s -->" % line.name
    text = readme.read_text() if readme.exists() else ""
    first = text.find(begin)
    last = text.find(end, first + 1)
    if first < 0 or last < 0:
        raise UsageError("--publish: README.md has no lines %r and %r "
                         "between which to put the table" % (begin, end))
    return readme, text, first + len(begin), last


def publish(ws, line, doc, table):
    """Put the table of a run, with its command, into the README."""
    readme, text, start, stop = readme_section(ws, line)
    lines = ["", "`%s`, %s, %d CPUs, %dm%02ds:" % (
        doc["command"], doc["started"], doc["cpus"],
        *divmod(int(doc["wall_seconds"]), 60)),
        "", "```text", table, "```", ""]
    readme.write_text(text[:start] + "\n".join(lines) + text[stop:])
    print("published: the table in README.md")
