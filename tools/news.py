"""NEWS entries of the series: finding them and validating them with blurb.

CPython keeps one file per change under Misc/NEWS.d/next/<Section>/, named
<date>.<bpo-N|gh-issue-N>.<nonce>.rst, and `blurb` (from PyPI) both writes
and parses them.  The series keeps those files in the workspace and names
them under their patch in the series file; this module checks them with
blurb's own parser, imported lazily so that the other verbs do not need it.
"""

import re

from .errors import UsageError

NEXT_DIR = "Misc/NEWS.d/next/"
ENTRY_RE = re.compile(r"^Misc/NEWS\.d/next/(?P<section>[^/]+)/(?P<name>[^/]+\.rst)$")
INSTALL_HINT = ("install the dev requirements: python3 -m pip install -r "
                "requirements/dev.txt (or run the tools with build/venv/bin/"
                "python after `make build/venv/installed`)")


def entries(paths):
    """The NEWS entries among PATHS (paths relative to a CPython tree)."""
    return [path for path in paths if ENTRY_RE.match(path)]


def patch_entries(patch):
    """NEWS entries a patch adds: named in the series, or in its diff."""
    found = entries(patch.adds)
    for path in entries(patch.touched_files()):
        if path not in found:
            found.append(path)
    return found


def load_blurb():
    """blurb's entry parser as (Blurbs, BlurbError, version), or None."""
    try:
        from blurb._blurb_file import BlurbError, Blurbs   # blurb >= 2.0
    except ImportError:
        try:
            from blurb.blurb import BlurbError, Blurbs     # blurb 1.x
        except ImportError:
            return None
    try:
        from blurb import __version__ as version
    except ImportError:
        version = "?"
    return Blurbs, BlurbError, version


def require_blurb(why):
    parser = load_blurb()
    if parser is None:
        raise UsageError("blurb is not installed for this Python; it is needed "
                         "%s: %s" % (why, INSTALL_HINT))
    return parser


def validate(parser, path, text=None):
    """Parse one entry with blurb; return (metadata, problem or None).

    PATH is where the file is on disk; blurb reads the section, the issue
    number, the date and the nonce from its last two components.
    """
    Blurbs, BlurbError, _ = parser
    blurbs = Blurbs()
    try:
        blurbs.load_next(str(path))
    except (BlurbError, AssertionError, ValueError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return None, "blurb rejects it: %s" % detail
    except UnicodeDecodeError:
        return None, "blurb rejects it: the file is not UTF-8"
    except FileNotFoundError:
        return None, "the file does not exist"
    if len(blurbs) != 1:
        return None, "blurb reads %d entries, a 'next' file holds one" % len(blurbs)
    metadata, _body = blurbs[0]
    return metadata, None


def issue_of(metadata):
    """'bpo-N' or 'gh-N' from blurb's metadata of an entry."""
    if metadata.get("gh-issue") and metadata["gh-issue"] != "0":
        return "gh-" + metadata["gh-issue"]
    if metadata.get("bpo") and metadata["bpo"] != "0":
        return "bpo-" + metadata["bpo"]
    return None
