"""Export the patched CPython in a form another installer builds.

  export pyenv DIR [--name NAME] [--tarball PATH] [--force]

writes a python-build definition DIR/NAME (default <release>-zerocopy) and
its patch folder DIR/patches/NAME/Python-X.Y.Z/, one `git format-patch`
file per patch of the series, which python-build applies with `patch -p1`.
The definition downloads python.org's tarball and checks its pinned
sha256; with --tarball PATH the tarball is copied to DIR/cache/ for an
offline build (PYTHON_BUILD_CACHE_PATH).  The commands to use are printed.
"""

import os
import re
import shutil
import tarfile
import tempfile
import textwrap
from pathlib import Path

from .model import basestore
from .model.tree import apply_series, print_result
from .model.errors import Failure, UsageError
from .model.gitutil import git, run as run_command
from .model.series import Series

FORMATS = ("pyenv",)
# What a definition file name may hold: python-build reads the version of
# the interpreter it installs from the start of the name.
NAME_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# Tarballs python-build can unpack, by the end of their URL, and the
# extension it gives the file it looks for in PYTHON_BUILD_CACHE_PATH.
TARBALL_SUFFIXES = {".tar.xz": ".tar.xz", ".txz": ".tar.xz",
                    ".tar.gz": ".tar.gz", ".tgz": ".tar.gz",
                    ".tar.bz2": ".tar.bz2", ".tbz2": ".tar.bz2"}


def add_arguments(parser):
    parser.add_argument("format", metavar="FORMAT",
                        help="what to write: %s" % ", ".join(FORMATS))
    parser.add_argument("directory", metavar="DIR",
                        help="where to write it (new or empty; see --force)")
    parser.add_argument("--name", metavar="NAME",
                        help="the definition's name, which pyenv installs "
                             "the interpreter under (default: "
                             "<release>-zerocopy, e.g. 3.7.3-zerocopy)")
    parser.add_argument("--tarball", metavar="PATH",
                        help="build from this CPython release tarball "
                             "instead of python.org's download (offline)")
    parser.add_argument("--force", action="store_true",
                        help="write into DIR even if it is not empty, "
                             "replacing an earlier export of NAME")


def run(ws, line, args):
    if args.format not in FORMATS:
        raise UsageError("unknown export format %r: choose %s"
                         % (args.format, ", ".join(FORMATS)))
    result = export_pyenv(ws, line, args.directory, name=args.name,
                          tarball=args.tarball, force=args.force)
    source, env = result["source"], result["source"]["env"]
    print("wrote %s: %s with %d patch(es) in %s"
          % (result["definition"], result["package"], len(result["patches"]),
             result["patch_dir"]))
    # Without a cache, the origin is the URL the definition downloads.
    copied = ", copied to %s" % source["cache"] if source["cache"] else ""
    print("  source: %s (sha256 %s)%s" % (source["origin"], source["sha256"],
                                          copied))
    print("install %swith python-build (PREFIX: where to install):"
          % ("offline " if env else ""))
    print("  %s%s %s PREFIX" % (env, python_build_command(),
                                result["definition"]))
    print("or with pyenv (into $(pyenv root)/versions/%s):" % result["name"])
    print("  %spyenv install %s" % (env, result["definition"]))
    return 0


# -- checks of the request, all before any work ---------------------------

def check_name(line, name):
    if not NAME_CHARS.match(name):
        raise UsageError("%r cannot name a python-build definition: use "
                         "letters, digits and . _ + - (e.g. %s-zerocopy)"
                         % (name, line.reference))
    # python-build finds the installed bin/pythonX.Y from the first two
    # numbers of the definition's name.
    if not re.match(r"^%s(?:[.-]|$)" % re.escape(line.name), name):
        raise UsageError("the definition name %r must start with %s (e.g. "
                         "%s-zerocopy): python-build finds the interpreter "
                         "it installs by the version the name starts with"
                         % (name, line.name, line.reference))


def check_tarball(path, version, package):
    """The extension python-build gives the tarball at PATH in its cache,
    once PATH is known to hold the CPython VERSION tree in one top
    directory, as python-build expects (Python-X.Y.Z/...)."""
    if not path.is_file():
        raise UsageError("no tarball at %s: give the path of a CPython %s "
                         "release tarball" % (path, version))
    suffixes = [cached for suffix, cached in TARBALL_SUFFIXES.items()
                if path.name.endswith(suffix)]
    if not suffixes:
        raise UsageError("%s is not a tarball python-build unpacks: give a "
                         "Python-X.Y.Z.tar.xz (or .tar.gz, .tar.bz2)" % path)
    found = None
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = re.sub(r"^(?:\./)+", "", member.name)
                if member.isfile() and re.fullmatch(
                        r"[^/]*/Include/patchlevel\.h", name):
                    text = archive.extractfile(member).read()
                    found = basestore.patchlevel_version(
                        text.decode("utf-8", "replace"))
                    break
    except tarfile.ReadError:
        raise UsageError("cannot read the tarball %s: it is not a tar "
                         "archive (plain, xz, gzip or bzip2)" % path) from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError("cannot read the tarball %s: %s" % (path, detail)) \
            from None
    if found is None:
        raise UsageError("%s holds no CPython source tree in a top directory "
                         "(no %s/Include/patchlevel.h)" % (path, package))
    if found != version:
        raise UsageError("%s is CPython %s, but the patches are made from the "
                         "imported %s base: give a %s tarball, or import the "
                         "matching base" % (path, found, version, version))
    return suffixes[0]


# -- the export -----------------------------------------------------------

def export_pyenv(ws, line, directory, name=None, tarball=None, force=False):
    """Write the python-build definition NAME and its patches into
    DIRECTORY; return what was written, for run to print."""
    directory = Path(directory).expanduser().absolute()
    if name is not None:
        check_name(line, name)
    base = basestore.load(ws, line, "source")
    if base is None:
        raise UsageError(
            "no CPython %s source base imported, and the definition needs "
            "the C sources: run `python3 -m tools base import PATH` (a "
            "source tree or tarball) or `python3 -m tools base download`"
            % line.name)
    package = "Python-%s" % base.version
    name = name or "%s-zerocopy" % base.version
    if tarball is not None:
        tarball = Path(tarball).expanduser().absolute()
        suffix = check_tarball(tarball, base.version, package)
        cache = directory / "cache" / (package + suffix)
        source = {"sha256": basestore.sha256_file(tarball),
                  "origin": str(tarball), "url": cache.as_uri(),
                  "cache": cache,
                  "env": "PYTHON_BUILD_CACHE_PATH=%s " % cache.parent}
    else:
        download = line.downloads.get(base.version)
        if download is None:
            raise UsageError("no python.org tarball of CPython %s is pinned "
                             "in tools/model/workspace.py: pass --tarball PATH"
                             % base.version)
        source = {"sha256": download.sha256, "url": download.url,
                  "origin": download.url, "cache": None, "env": ""}
    if directory.exists() and not directory.is_dir():
        raise UsageError("%s exists and is not a directory: name a new or "
                         "empty directory" % directory)
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UsageError("%s exists and is not empty: name a new or empty "
                         "directory, or pass --force to write into it"
                         % directory)
    if tarball is None:
        # The patches are diffs of the imported base; the definition
        # applies them to python.org's tarball.  Say so when the base's
        # copies of the files the series changes are not the release's.
        touched = Series.load(ws.series_dir(line)).touched_files()
        known, problems = basestore.verify(ws, line, base, touched)
        if not known:
            print("warning: bases.json records no hashes of CPython %s: the "
                  "patches may not apply to python.org's tarball"
                  % base.version)
        for problem in problems:
            print("warning: %s; the patches may not apply to python.org's "
                  "tarball" % problem)

    applied = apply_series(ws, line, kind="source",
                           src=ws.build_dir(line) / "export" / "src")
    print_result(applied)
    # Not TemporaryDirectory: a failed cleanup must not fail an export
    # whose patches are already in DIR.
    staging = Path(tempfile.mkdtemp(prefix="zerocopy-export-"))
    try:
        # One self-contained patch per commit after the base.
        git(applied["src"], "format-patch", "--quiet", "--zero-commit",
            "--no-signature", "--no-renames", "-o", str(staging),
            "refs/zerocopy/base..HEAD")
        patches = sorted(staging.glob("[0-9][0-9][0-9][0-9]-*.patch"))
        if not patches:
            raise Failure("the series is empty: nothing to export")
        for patch in patches:
            if "\nGIT binary patch\n" in patch.read_text(errors="replace"):
                raise Failure("%s changes a binary file, which patch -p1 (and "
                              "so python-build) cannot apply" % patch.name)
        definition = directory / name
        patch_dir = directory / "patches" / name / package
        directory.mkdir(parents=True, exist_ok=True)
        # python-build applies every file of the folder: an earlier
        # export's patches must not linger beside the new ones.
        if (directory / "patches" / name).exists():
            shutil.rmtree(directory / "patches" / name)
        patch_dir.mkdir(parents=True)
        for patch in patches:
            shutil.copyfile(patch, patch_dir / patch.name)
        cache = source["cache"]
        if cache is not None and not (cache.exists() and
                                      cache.samefile(tarball)):
            cache.parent.mkdir(exist_ok=True)
            shutil.copyfile(tarball, cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    names = [p.name for p in patches]
    definition.write_text(definition_text(ws, line, definition, package,
                                          source, names, applied))
    return {"definition": definition, "patch_dir": patch_dir,
            "patches": names, "package": package, "source": source,
            "name": name}


# The build steps of pyenv's own CPython 3.7 definitions.
DEFINITION_STEPS = """
# configure reads a git branch into sys.version only from a srcdir/.git, which
# a tarball lacks; say that git is absent all the same, as distributions do.
export ac_cv_prog_HAS_GIT=not-found

# OpenSSL 1.1 where Homebrew or MacPorts offer a choice (macOS);
# elsewhere these change nothing and the system's OpenSSL is used.
prefer_openssl11
export PYTHON_BUILD_CONFIGURE_WITH_OPENSSL=1
"""
NEEDS_XZ = """
if ! has_tar_xz_support; then
  echo "python-build: %s needs tar with xz support (install xz)" >&2
  exit 1
fi
"""


def definition_text(ws, line, definition, package, source, patches,
                    applied):
    """The definition: a bash script python-build sources, which calls
    install_package with the tarball's URL#sha256."""
    name = definition.name
    proc = git(ws.root, "describe", "--always", "--dirty", check=False)
    revision = proc.stdout.strip() if proc.returncode == 0 else ""
    about = ("python-build definition: CPython %s with the zero-copy "
             "pickling series of patches/%s%s.  Written by `python3 -m tools "
             "export pyenv`%s; export again rather than edit it."
             % (applied["base"].version, line.name,
                " (%s)" % line.summary if line.summary else "",
                " at workspace commit %s" % revision if revision else ""))
    lines = ["# " + text for text in textwrap.wrap(about, 76)]
    lines += ["#", "# python-build applies, in name order and with `patch "
              "-p1`, the files of", "#   patches/%s/%s/" % (name, package),
              "# beside this file:"]
    lines += ["#   %s" % patch for patch in patches]
    cache, env = source["cache"], source["env"]
    lines += ["#", "# Install with:",
              "#   %spython-build %s PREFIX" % (env, definition),
              "#   %spyenv install %s" % (env, definition)]
    if cache:
        lines += ["# The source is %s (copied to %s);"
                  % (source["origin"], cache.name),
                  "# python-build takes it from PYTHON_BUILD_CACHE_PATH "
                  "without going online."]
    text = "\n".join(lines) + "\n" + DEFINITION_STEPS
    if source["url"].endswith("xz"):
        text += NEEDS_XZ % name
    return text + '\ninstall_package "%s" "%s#%s" standard verify_py%s ' \
        'copy_python_gdb ensurepip\n' % (package, source["url"],
                                         source["sha256"],
                                         line.name.replace(".", ""))


def python_build_command():
    """python-build's path: on PATH (pyenv puts its plugin there for the
    commands it runs), else pyenv's plugin; the bare name otherwise."""
    found = shutil.which("python-build")
    if found:
        return found
    if shutil.which("pyenv"):
        proc = run_command(["pyenv", "root"], check=False)
        candidate = Path(proc.stdout.strip(), "plugins", "python-build",
                         "bin", "python-build")
        if proc.returncode == 0 and os.access(candidate, os.X_OK):
            return str(candidate)
    return "python-build"
