"""NEWS entries of the series: finding them and validating them with blurb.

CPython keeps one file per change under Misc/NEWS.d/next/<Section>/, named
<date>.<bpo-N|gh-issue-N>.<nonce>.rst, and `blurb` (from PyPI) both writes
and parses them.  Each patch of the series adds its entry; this module
checks them with blurb's own parser, imported lazily so that the other
verbs do not need it.

A change of ours that has no upstream issue yet carries PLACEHOLDER as its
issue, in its subject (`bpo-0: pickle: ...`) and in the name of its NEWS
entry (`<date>.bpo-0.<nonce>.rst`).  Why that spelling: every blurb the
checks use must read the entry.  blurb 1.0.7 (the 3.7 docs' pin, in
requirements/docs-py37.txt) knows only `bpo-N` fields in a file name and
asserts on `gh-issue-N`; blurb 2.3.0 (requirements/dev.txt) reads both, but
wants a gh-issue number >= 32426 and a number, not gh-issue-NNNNN.  bpo-0
passes both, and 0 is blurb's own "no issue" (its default for an entry
without one); bugs.python.org is closed, so it can stand for no real issue.
`tools upstream --gh-issue N` turns it into gh-N and gh-issue-N.
"""

import re

from .errors import UsageError

# The one spelling of "no upstream issue yet"; nothing else in tools/
# spells it.
PLACEHOLDER = "bpo-0"
_SUBJECT = re.compile(r"^%s:\s*" % re.escape(PLACEHOLDER))
_MAIL_SUBJECT = re.compile(r"^(Subject: (?:\[[^\]]*\] )?)%s:"
                           % re.escape(PLACEHOLDER), re.M)
_NEWS_NAME = re.compile(r"(Misc/NEWS\.d/next/[^/\s]+/[^/\s]+)\.%s\."
                        % re.escape(PLACEHOLDER))

NEXT_DIR = "Misc/NEWS.d/next/"
ENTRY_RE = re.compile(r"^Misc/NEWS\.d/next/(?P<section>[^/]+)/(?P<name>[^/]+\.rst)$")
INSTALL_HINT = ("install the dev requirements: python3 -m pip install -r "
                "requirements/dev.txt (or run the tools with build/venv/bin/"
                "python after `make build/venv/installed`)")


def entries(paths):
    """The NEWS entries among PATHS (paths relative to a CPython tree)."""
    return [path for path in paths if ENTRY_RE.match(path)]


def patch_entries(patch):
    """NEWS entries a patch adds."""
    return entries(patch.adds())


def subject_has_placeholder(subject):
    return bool(_SUBJECT.match(subject))


def path_has_placeholder(path):
    return bool(_NEWS_NAME.search(path))


def strip_placeholder(subject):
    """SUBJECT without a leading placeholder issue."""
    return _SUBJECT.sub("", subject)


def fill_issue_in_subject(subject, gh_issue):
    return _SUBJECT.sub("gh-%d: " % gh_issue, subject)


def fill_issue_in_mail(text, gh_issue):
    """A patch mail with the placeholder turned into issue GH_ISSUE, in the
    subject and in the names of NEWS entries (diffstat and diff alike)."""
    text = _MAIL_SUBJECT.sub(r"\g<1>gh-%d:" % gh_issue, text)
    return _NEWS_NAME.sub(r"\g<1>.gh-issue-%d." % gh_issue, text)


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
