"""Locate, import and verify the CPython base a series applies to.

  base                      show the imported bases of the line
  base import PATH          a source directory or a release tarball
  base import GITDIR --rev REV
                            a git directory at a revision (blobs absent
                            from a partial snapshot are skipped and listed)
  base download [--version V]
                            the python.org release tarball, checked against
                            its pinned sha256
  base installed [PYTHON]   an installed interpreter (pyenv or PATH by
                            default) for the overlay build
  base debian               Debian's source package (lines that name one)
  base verify               compare what the series touches with the manifest
  base manifest [--write]   print or record the hashes of the files the
                            series touches, as found in the imported base
  base forget [--kind K]    remove imported bases from the cache

Bases live in the cache ($ZEROCOPY_PICKLE_CACHE, default
~/.cache/zerocopy-pickle), never in the repository.
"""

import shutil
from pathlib import Path

from .model import basestore, debian, providers
from .model.basestore import no_base_message
from .model.errors import UsageError
from .model.series import Series


def add_arguments(parser):
    parser.add_argument("action", nargs="?", default="status",
                        choices=["status", "import", "download", "installed",
                                 "debian", "verify", "manifest", "forget"])
    parser.add_argument("path", nargs="?",
                        help="for import: directory, tarball or git directory; "
                             "for installed: the interpreter")
    parser.add_argument("--rev", help="revision to import from a git directory")
    parser.add_argument("--version", help="release to download")
    parser.add_argument("--kind", choices=basestore.KINDS,
                        help="which base (default: all for forget, the "
                             "source base when there is one otherwise)")
    parser.add_argument("--write", action="store_true",
                        help="for manifest: record it in the series' bases.json")


def touched_files(ws, line):
    series_dir = ws.series_dir(line)
    if not (series_dir / "series").exists():
        return []
    return Series.load(series_dir).touched_files()


def report_verification(ws, line, base):
    known, problems = basestore.verify(ws, line, base, touched_files(ws, line))
    base.record["verified"] = {"known_version": known, "problems": problems}
    base.save()
    if problems:
        print("verify: %d difference(s) from the manifest:" % len(problems))
        for problem in problems:
            print("  " + problem)
    elif known:
        print("verify: the files the series touches match CPython %s"
              % base.version)
    else:
        known_versions = sorted(basestore.load_manifest(ws, line))
        print("verify: no manifest for CPython %s (known: %s); the series "
              "was written against %s and may not apply"
              % (base.version, ", ".join(known_versions) or "none",
                 line.reference))
    return problems


def run(ws, line, args):
    action = args.action
    if action == "status":
        return status(ws, line)
    if action == "import":
        if not args.path:
            raise UsageError("base import needs a PATH (source directory, "
                             "tarball, or git directory with --rev)")
        path = Path(args.path)
        if not path.exists():
            raise UsageError("no such file or directory: %s" % path)
        if args.rev:
            if not providers.looks_like_git(path):
                raise UsageError("--rev given but %s is not a git directory"
                                 % path)
            base = providers.from_git(ws, line, path, args.rev)
        elif path.is_dir():
            if providers.looks_like_git(path) and not (
                    path / "Include" / "patchlevel.h").exists():
                raise UsageError("%s is a git directory without a work tree: "
                                 "name the revision with --rev" % path)
            base = providers.from_directory(ws, line, path)
        else:
            base = providers.from_tarball(ws, line, path)
    elif action == "download":
        base = providers.from_download(ws, line, args.version)
    elif action == "installed":
        base = providers.from_installed(ws, line, args.path)
    elif action == "debian":
        base = debian.import_source(ws, line)
    elif action == "verify":
        base = basestore.select(ws, line, args.kind)
        if base is None:
            raise UsageError(no_base_message(line))
        print(base.describe())
        return 1 if report_verification(ws, line, base) else 0
    elif action == "manifest":
        return manifest(ws, line, args)
    elif action == "forget":
        return forget(ws, line, args.kind)
    print("imported: " + base.describe())
    if base.record.get("missing"):
        print("skipped %d blob(s) absent from the origin: %s"
              % (len(base.record["missing"]), ", ".join(base.record["missing"])))
    report_verification(ws, line, base)
    return 0


def status(ws, line):
    found = False
    for kind in basestore.KINDS:
        base = basestore.load(ws, line, kind)
        if base is None:
            continue
        found = True
        print("%s: %s" % (kind, base.describe()))
        verified = base.record.get("verified")
        if verified:
            print("  %s" % ("matches the manifest" if not verified["problems"]
                            else "%d difference(s); run `python3 -m tools base "
                                 "verify`" % len(verified["problems"])))
    if not found:
        print(no_base_message(line))
        installed = providers.find_installed(line)
        if installed:
            print("found an installed interpreter: %s" % installed[0])
    return 0


def manifest(ws, line, args):
    base = basestore.select(ws, line, args.kind)
    if base is None:
        raise UsageError(no_base_message(line))
    touched = touched_files(ws, line)
    entries = {path: basestore.sha256_file(base.tree / path)
               for path in basestore.relevant_paths(base, touched)
               if (base.tree / path).exists()}
    if args.write:
        data = basestore.load_manifest(ws, line)
        data[base.version] = entries
        basestore.write_manifest(ws, line, data)
        print("recorded %d file(s) of CPython %s in %s"
              % (len(entries), base.version, ws.manifest_path(line)))
    else:
        for path, digest in sorted(entries.items()):
            print("%s  %s" % (digest, path))
    return 0


def forget(ws, line, kind):
    kinds = [kind] if kind else list(basestore.KINDS)
    for each in kinds:
        directory = ws.base_dir(line, each)
        if directory.exists():
            shutil.rmtree(directory)
            print("removed the %s %s base" % (line.name, each))
    return 0
