"""Where things live: the workspace, the cache of bases, the build tree,
and the release lines ("bases") the workspace carries a series for."""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UsageError


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str

    @property
    def filename(self):
        return self.url.rsplit("/", 1)[1]


@dataclass(frozen=True)
class DebianSource:
    package: str
    suite: str
    upstream_version: str
    # Fingerprint of the release manager's OpenPGP key for this release.
    signing_key: str = ""
    mirror: str = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Line:
    """A CPython release line the workspace carries one series for."""

    name: str
    reference: str          # the release the series is written against
    downloads: dict         # version -> Download of the python.org tarball
    debian: Optional[DebianSource] = None
    summary: str = ""
    # How many leading patches the base itself needs to build and run with
    # today's toolchain: `tools build --stock` applies just these, so that
    # the stock interpreter differs from the patched one by the rest only.
    toolchain_fixes: int = 0


LINES = {
    "3.7": Line(
        name="3.7",
        reference="3.7.3",
        downloads={
            "3.7.3": Download(
                "https://www.python.org/ftp/python/3.7.3/Python-3.7.3.tar.xz",
                "da60b54064d4cfcd9c26576f6df2690e62085123826cff2e667e72a91952d318"),
            "3.7.17": Download(
                "https://www.python.org/ftp/python/3.7.17/Python-3.7.17.tar.xz",
                "7911051ed0422fd54b8f59ffc030f7cf2ae30e0f61bda191800bb040dce4f9d2"),
        },
        summary="PEP 574 (protocol 5, PickleBuffer, out-of-band buffers), "
                "Pickler.reducer_override, and no-copy writes and reads of "
                "large bytes, bytearray and str payloads",
        # 0001 (bpo-27987): GCC 12 counts on malloc()'s 16-byte alignment,
        # which 3.7.3's pymalloc and PyGC_Head lack; without it `import
        # ctypes` crashes, and pip and ensurepip with it.
        toolchain_fixes=1,
    ),
    "3.13": Line(
        name="3.13",
        reference="3.13.5",
        downloads={
            "3.13.5": Download(
                "https://www.python.org/ftp/python/3.13.5/Python-3.13.5.tar.xz",
                "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"),
        },
        debian=DebianSource(
            package="python3.13", suite="trixie", upstream_version="3.13.5",
            signing_key="7169605F62C751356D054A26A821E680E5FA6305"),
        summary="no-copy writes of large str payloads (upstream already has "
                "PEP 574 and reducer_override)",
    ),
}
DEFAULT_LINE = "3.7"
# The interpreter records `tools build` writes (None: the patched build),
# as the messages name them.
INTERPRETER_VARIANTS = {None: "patched ", "debug": "patched debug ",
                        "stock": "stock (same build) "}


# The regrtest modules of the series: the pickle modules' tests, and the
# tests of the core types the series changes (bytearray, memoryview),
# which only a full build compiles; an overlay keeps the installed core.
PICKLE_TESTS = ["test_pickle", "test_pickletools", "test_picklebuffer"]
CORE_TESTS = ["test_bytes", "test_memoryview"]


def base_option(line):
    """The --base option a command for LINE needs, as it is typed."""
    return "" if line.name == DEFAULT_LINE else " --base " + line.name


def interpreter(ws, line, debug=False, stock=False):
    """The record of the built interpreter; UsageError when there is none."""
    variant = "debug" if debug else "stock" if stock else None
    record = ws.read_interpreter(line, variant=variant)
    build = "python3 -m tools build%s%s" % (
        base_option(line), " --" + variant if variant else "")
    what = INTERPRETER_VARIANTS[variant]
    if record is None:
        raise UsageError("no %sCPython %s interpreter yet: run `%s`"
                         % (what, line.name, build))
    if not Path(record["python"]).exists():
        raise UsageError("the %sinterpreter %s is gone: run `%s`"
                         % (what, record["python"], build))
    return record


def parse_size(text, option, examples="4G or 512M"):
    """A size such as 512M or 4.5G, as (its text for regrtest's -M, bytes);
    UsageError naming OPTION otherwise."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)(?:I?B)?$",
                     text.strip().upper())
    if not match:
        raise UsageError("%s %r is not a size like %s" % (option, text,
                                                          examples))
    shift = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[match.group(2)]
    return text.strip().upper(), int(float(match.group(1)) * (1 << shift))


def cache_root():
    explicit = os.environ.get("ZEROCOPY_PICKLE_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    # expanduser, unlike Path.home(), gives an answer without HOME and
    # without a passwd entry.
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(xdg).resolve() / "zerocopy-pickle"


class Workspace:
    """Paths of one workspace checkout (the repository root)."""

    def __init__(self, root=None, cache=None):
        self.root = Path(root or Path(__file__).resolve().parents[2]).resolve()
        self.cache = Path(cache).resolve() if cache else cache_root()

    # -- the repository
    def series_dir(self, line):
        return self.root / "patches" / line.name

    def new_files_dir(self, line):
        """Copies of the files the series adds, at their CPython paths."""
        return self.root / "new-files" / line.name

    def manifest_path(self, line):
        return self.series_dir(line) / "bases.json"

    def overlay_dir(self, line):
        """The overlay build's own C files (tools/build.py)."""
        return self.root / "interpreter" / line.name / "overlay"

    def overlay_series_dir(self, line):
        """Downstream patches of the overlay build, after the series."""
        return self.root / "patches" / (line.name + "-overlay")

    def stdlib_extras_dir(self, line):
        """What every build adds to the standard library (pickle5)."""
        return self.root / "interpreter" / line.name / "stdlib"

    # -- outside the repository
    def base_dir(self, line, kind):
        return self.cache / "bases" / line.name / kind

    def downloads_dir(self):
        return self.cache / "downloads"

    # -- build products, ignored by git
    def build_dir(self, line):
        return self.root / "build" / line.name

    def src_dir(self, line):
        return self.build_dir(line) / "src"

    def interpreter_record(self, line, debug=False, variant=None):
        """build/<line>/interpreter.json for the patched build, or
        interpreter-<variant>.json for one of the others: "debug" (the
        --with-pydebug build; debug=True says the same) or "stock" (the
        base without the series, from `tools build --stock`)."""
        variant = "debug" if debug else variant
        if variant not in INTERPRETER_VARIANTS:
            raise ValueError("unknown interpreter variant %r" % variant)
        return self.build_dir(line) / (
            "interpreter-%s.json" % variant if variant else "interpreter.json")

    def read_interpreter(self, line, debug=False, variant=None):
        """The record `tools build` leaves of an interpreter it built."""
        path = self.interpreter_record(line, debug, variant)
        return json.loads(path.read_text()) if path.exists() else None
