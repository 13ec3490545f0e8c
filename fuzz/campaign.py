"""A fuzz campaign: workers of this interpreter, a report, an exit status.

    python -m fuzz [--count N] [--seed S] [--limit BYTES] [--jobs J]
                   [--timeout SECONDS] [--out DIR] [--self-test KIND]

Exit status 0 when no unpickler crashed, hung, printed an unraisable
error or raised an exception outside the documented set; 1 otherwise.
"""

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from fuzz.driver import SOURCES, UNPICKLERS
from fuzz.mutate import SWEEP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTEMPTS = [(u, s) for u in UNPICKLERS for s in SOURCES]
# Inputs saved, and findings shown, per kind of finding and unpickler.
SAVED = 3
# Past this many worker deaths, the campaign itself is broken.
MAX_RESTARTS = 200


class Result(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {u: collections.Counter() for u in UNPICKLERS}
        self.streams = {u: set() for u in UNPICKLERS}
        # unpickler -> [(kind, stream, source, detail)]
        self.findings = {u: [] for u in UNPICKLERS}
        self.seeds = self.sweep = "?"
        self.fatal = None
        self.restarts = 0

    def finding(self, unpickler, kind, index, source, detail):
        with self.lock:
            self.findings[unpickler].append((kind, index, source, detail))


class Campaign(object):
    def __init__(self, args):
        self.args = args
        self.result = Result()
        self.saved = collections.Counter()
        self.env = dict((k, v) for k, v in os.environ.items()
                        if not k.startswith("PYTHON"))
        self.env.update(PYTHONHASHSEED="0", PYTHONPATH=ROOT)

    def command(self, *extra):
        return [sys.executable, "-m", "fuzz.driver",
                "--seed", str(self.args.seed)] + [str(e) for e in extra]

    def worker(self, start, stop):
        """Run streams [start, stop) to the end, restarting after deaths."""
        skip = 0
        while start < stop:
            last = None  # (index, attempt number) of the last line
            with tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(self.command(
                    "--start", start, "--stop", stop, "--skip", skip,
                    "--limit", self.args.limit, "--timeout", self.args.timeout,
                    *(["--self-test", self.args.self_test]
                      if self.args.self_test else [])),
                    stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                    env=self.env, universal_newlines=True)
                ready = False
                for line in proc.stdout:
                    ready = True  # the first line says the corpus is built
                    last = self.record(line.rstrip("\n")) or last
                code = proc.wait()
                err.seek(0)
                stderr = err.read().decode("utf-8", "replace")
            if not ready:
                # Not a finding about one stream: nothing would run.
                self.result.fatal = "a worker failed to start (exit %d):\n" \
                    "%s" % (code, stderr[-2000:].strip())
                return
            if last is None:
                index, number = start, skip
            else:
                index, number = last[0], last[1] + 1
            if code == 0 and stderr.strip():
                self.result.finding("C", "stderr", start, "-", stderr[-2000:])
            if code == 0:
                return
            if number == len(ATTEMPTS):
                index, number = index + 1, 0
            unpickler, source = ATTEMPTS[number]
            if code == -signal.SIGPROF:
                kind = "timeout"
            elif code < 0:
                kind = "crash (%s)" % signal.Signals(-code).name
            else:
                kind = "worker error (exit %d)" % code
            path = self.save(kind.split()[0], index, unpickler, source)
            self.result.finding(unpickler, kind, index, source,
                                "%s\n%s" % (path, stderr[-1000:].strip()))
            with self.result.lock:
                self.result.restarts += 1
                if self.result.restarts > MAX_RESTARTS:
                    self.result.fatal = "more than %d workers died; the " \
                        "last:\n%s" % (MAX_RESTARTS, stderr[-2000:].strip())
                if self.result.fatal:
                    return
            start, skip = index, number + 1
            if skip == len(ATTEMPTS):
                start, skip = index + 1, 0

    def record(self, line):
        tag, _, rest = line.partition(" ")
        if tag == "R":
            kept, dropped, cuts = (int(n) for n in rest.split())
            swept = min(cuts, -(-self.args.count * SWEEP[0] // SWEEP[1]))
            self.result.seeds = "%d seeds (%d left out: they need " \
                "globals outside the whitelist)" % (kept, dropped)
            self.result.sweep = "truncation sweep: %d of %d cuts" % (
                swept, cuts)
            return None
        fields = rest.split(" ", 5)
        index, unpickler, source = int(fields[0]), fields[1], fields[2]
        if tag == "U":
            text = json.loads(rest.split(" ", 3)[3])
            self.result.finding(unpickler, "unraisable", index, source,
                                "%s\n%s" % (text.strip(), self.saved_input(
                                    "unraisable", index, unpickler, source)))
            return None
        name, verdict = fields[3], fields[4]
        with self.result.lock:
            self.result.outcomes[unpickler][name] += 1
            self.result.streams[unpickler].add(index)
        if verdict == "undoc":
            message = json.loads(fields[5]) if len(fields) > 5 else ""
            path = self.saved_input("undocumented-" + name, index, unpickler,
                                    source)
            self.result.finding(unpickler, "undocumented " + name, index,
                                source, "%s: %s\n%s" % (name, message, path))
        return index, ATTEMPTS.index((unpickler, source))

    def saved_input(self, kind, index, unpickler, source):
        """The first few inputs of each kind of finding are saved."""
        with self.result.lock:
            self.saved[unpickler, kind] += 1
            if self.saved[unpickler, kind] > SAVED:
                return "(input not saved: more than %d of these)" % SAVED
        return self.save(kind, index, unpickler, source)

    def save(self, kind, index, unpickler, source):
        """Write stream INDEX to the output folder; its path and replay."""
        data = subprocess.run(self.command("--dump", index), cwd=ROOT,
                              env=self.env, stdout=subprocess.PIPE).stdout
        os.makedirs(self.args.out, exist_ok=True)
        path = os.path.join(self.args.out, "%s-seed%d-%d-%s-%s.pickle" % (
            kind, self.args.seed, index, unpickler, source))
        with open(path, "wb") as f:
            f.write(data)
        literal = repr(data) if len(data) <= 200 else "%d bytes" % len(data)
        return ("input %s: %s\n  reproduce: cd %s && PYTHONHASHSEED=0 %s -m "
                "fuzz.driver --seed %d --replay %d --unpickler %s --source %s "
                "--limit %d%s" % (
                    path, literal, ROOT, sys.executable, self.args.seed,
                    index, unpickler, source, self.args.limit,
                    " --self-test " + self.args.self_test
                    if self.args.self_test else ""))

    def run(self):
        # The inputs left by an earlier campaign would read as this one's.
        if os.path.isdir(self.args.out):
            for name in os.listdir(self.args.out):
                if name.endswith(".pickle"):
                    os.remove(os.path.join(self.args.out, name))
        count, jobs = self.args.count, max(1, self.args.jobs)
        bounds = [count * j // jobs for j in range(jobs + 1)]
        threads = [threading.Thread(target=self.worker, args=(a, b))
                   for a, b in zip(bounds, bounds[1:]) if b > a]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.result


def report(args, result, seconds):
    if result.fatal:
        sys.stderr.write("error: %s\n" % result.fatal)
        return 1
    print("fuzz: %s\n  %d mutated protocol-5 streams, seed %d, from %s\n"
          "  %s; sources: %s; address space limit %d MiB\n"
          "  %.1f s, %d worker restarts" % (
              sys.executable, args.count, args.seed, result.seeds,
              result.sweep, ", ".join(SOURCES), args.limit >> 20, seconds,
              result.restarts))
    failed = False
    for unpickler in UNPICKLERS:
        findings = result.findings[unpickler]
        kinds = collections.Counter(f[0].split(" (")[0] for f in findings)
        undocumented = sum(n for k, n in kinds.items()
                           if k.startswith("undocumented"))
        print("\n%s unpickler: %d streams, %d loads" % (
            "C (pickle.Unpickler)" if unpickler == "C"
            else "Python (pickle._Unpickler)",
            len(result.streams[unpickler]),
            sum(result.outcomes[unpickler].values())))
        print("  %-40s %8s" % ("outcome", "loads"))
        for name, n in sorted(result.outcomes[unpickler].items(),
                              key=lambda item: (-item[1], item[0])):
            print("  %-40s %8d" % ("loaded" if name == "-" else name, n))
        print("  crashes %d, timeouts %d, unraisable errors %d, undocumented "
              "exceptions %d, worker errors %d" % (
                  kinds["crash"], kinds["timeout"],
                  kinds["unraisable"] + kinds["stderr"], undocumented,
                  kinds["worker error"]))
        by_kind = collections.defaultdict(list)
        for finding in sorted(findings, key=lambda f: (f[0], f[1])):
            by_kind[finding[0]].append(finding)
        for kind, group in sorted(by_kind.items()):
            for _, index, source, detail in group[:SAVED]:
                print("  FINDING %s: stream %d, source %s\n    %s" % (
                    kind, index, source,
                    str(detail).strip().replace("\n", "\n    ")))
            if len(group) > SAVED:
                print("  ... and %d more %s" % (len(group) - SAVED, kind))
        verdict = "FAIL" if findings else "PASS"
        failed = failed or bool(findings)
        print("  verdict: %s: %d crashes, %d timeouts, %d unraisable errors, "
              "%s" % (verdict, kinds["crash"], kinds["timeout"],
                      kinds["unraisable"] + kinds["stderr"],
                      "only documented exception types" if not undocumented
                      else "%d undocumented exceptions" % undocumented))
    return 1 if failed else 0


class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("error: %s\n" % message)
        sys.exit(2)


def size(text):
    """Bytes from "2G", "512M", "1048576"."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = text.upper().rstrip("B"), 1
    if number[-1:] in units:
        number, unit = number[:-1], units[number[-1]]
    try:
        value = int(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "%r is not a size such as 2G or 512M" % text)
    if value < 64 << 20:
        raise argparse.ArgumentTypeError(
            "%s is too small for a worker to start: give at least "
            "64M" % text)
    return value


def at_least_one(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("%r is not a number >= 1" % text)
    return value


def positive(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError("%r is not a number > 0" % text)
    return value


def main(argv=None):
    parser = Parser(prog="python -m fuzz")
    parser.add_argument("--count", type=at_least_one, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=size, default=2 << 30,
                        help="address space limit of a worker (2G, 512M)")
    parser.add_argument("--jobs", type=at_least_one,
                        default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=positive, default=10.0,
                        help="CPU seconds one load may take")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "fuzz"))
    parser.add_argument("--self-test", choices=(
        "struct-error", "crash", "timeout", "unraisable"))
    args = parser.parse_args(argv)
    started = time.time()
    result = Campaign(args).run()
    return report(args, result, time.time() - started)
