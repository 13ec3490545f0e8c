"""Imported bases in the cache, and their verification against manifests.

A line keeps at most one base of each kind: "source", a full CPython source
tree for the full build, and "installed", an installed interpreter's Lib/
for the overlay build.  Each base directory holds base.json (what it is,
where it came from) and tree/ (the files).
"""

import datetime
import hashlib
import json
import re
import shutil

from .errors import UsageError

KINDS = ("source", "installed")
RECORD = "base.json"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def patchlevel_version(text):
    """PY_VERSION defined by the text of an Include/patchlevel.h."""
    match = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', text)
    return match.group(1) if match else None


class Base:
    """One imported base: a directory in the cache with a record."""

    def __init__(self, directory, record):
        self.directory = directory
        self.record = record

    kind = property(lambda self: self.record["kind"])
    version = property(lambda self: self.record["version"])
    tree = property(lambda self: self.directory / "tree")

    def describe(self):
        text = "CPython %s %s base from %s" % (
            self.version, self.kind, self.record["origin"])
        missing = self.record.get("missing")
        if missing:
            text += " (%d file(s) missing from the origin: %s)" % (
                len(missing), ", ".join(missing[:3]))
        return text

    def label(self):
        return "CPython %s (%s base)" % (self.version, self.kind)

    def save(self):
        (self.directory / RECORD).write_text(
            json.dumps(self.record, indent=2, sort_keys=True) + "\n")


def load(ws, line, kind):
    directory = ws.base_dir(line, kind)
    path = directory / RECORD
    if not path.exists() or not (directory / "tree").is_dir():
        return None
    try:
        return Base(directory, json.loads(path.read_text()))
    except ValueError:
        raise UsageError("the base record %s is corrupt: remove it with "
                         "`python3 -m tools base forget --base %s --kind %s`"
                         % (path, line.name, kind)) from None


def select(ws, line, kind=None):
    """The base to build from: the source base when there is one."""
    kinds = [kind] if kind else list(KINDS)
    for candidate in kinds:
        base = load(ws, line, candidate)
        if base is not None:
            return base
    return None


def install(ws, line, kind, staged_tree, record):
    """Move a fully prepared tree into the cache as the line's KIND base."""
    directory = ws.base_dir(line, kind)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.move(str(staged_tree), str(directory / "tree"))
    base = Base(directory, dict(
        record, line=line.name, kind=kind,
        imported=datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds")))
    base.save()
    return base


# -- manifests: what the series expects of the files it touches

def load_manifest(ws, line):
    path = ws.manifest_path(line)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError("%s is not valid JSON: %s" % (path, exc)) from None


def write_manifest(ws, line, manifest):
    path = ws.manifest_path(line)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def relevant_paths(base, paths):
    """The touched paths a base of this kind can have."""
    if base.kind == "installed":
        return [p for p in paths if p.startswith("Lib/")]
    return list(paths)


def verify(ws, line, base, touched):
    """Compare the files the series touches with the manifest: (whether it
    knows this version, the differences as sentences)."""
    manifest = load_manifest(ws, line)
    expected = manifest.get(base.version)
    problems = []
    for path in relevant_paths(base, touched):
        local = base.tree / path
        if not local.exists():
            problems.append("%s: missing from the base" % path)
            continue
        if expected is None:
            continue
        want = expected.get(path)
        if want is None:
            problems.append("%s: not in the manifest of %s (run `python3 -m "
                            "tools base manifest --write` on a trusted base)"
                            % (path, base.version))
        elif want != sha256_file(local):
            problems.append("%s: differs from CPython %s (sha256 %s..., "
                            "expected %s...)" % (path, base.version,
                                                 sha256_file(local)[:12],
                                                 want[:12]))
    return expected is not None, problems


def no_base_message(line):
    return ("no CPython %s base imported: run `python3 -m tools base import "
            "PATH` (source tree or tarball), `python3 -m tools base download`, "
            "or `python3 -m tools base installed`" % line.name)
