"""NEWS entries: each patch adds its Misc/NEWS.d/next/<Section>/<file>.rst
and validate() runs blurb's command line (`blurb merge`) on that entry.

A change without an upstream issue yet carries PLACEHOLDER, bpo-0, in its
subject and in its entry's name: blurb 1.0.7 (the 3.7 docs' pin) knows only
bpo-N in file names and blurb 2.3.0 wants gh-issue numbers >= 32426, so
bpo-0, blurb's own "no issue", is the one both read.  `tools upstream
--gh-issue N` turns it into gh-N and gh-issue-N.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .gitutil import run as run_command

# The one spelling of "no upstream issue yet" in tools/.
PLACEHOLDER = "bpo-0"
_SUBJECT = re.compile(r"^%s:\s*" % re.escape(PLACEHOLDER))
_MAIL_SUBJECT = re.compile(r"^(Subject: (?:\[[^\]]*\] )?)%s:"
                           % re.escape(PLACEHOLDER), re.M)
_NEWS_NAME = re.compile(r"(Misc/NEWS\.d/next/[^/\s]+/[^/\s]+)\.%s\."
                        % re.escape(PLACEHOLDER))

# `gh-NNNNN:` and the like, written before the issue exists.
PLACEHOLDER_RE = re.compile(r"^((?:bpo|gh)-(?!\d+\s*:)[^\s:]+)\s*:")

ENTRY_RE = re.compile(r"^Misc/NEWS\.d/next/[^/]+/[^/]+\.rst$")
INSTALL_HINT = ("install the dev requirements: python3 -m pip install -r "
                "requirements/dev.txt (or run the tools with build/venv/bin/"
                "python after `make build/venv/installed`)")


def patch_entries(patch):
    """NEWS entries a patch adds."""
    return [path for path in patch.adds() if ENTRY_RE.match(path)]


def subject_has_placeholder(subject):
    return bool(_SUBJECT.match(subject))


def path_has_placeholder(path):
    return bool(_NEWS_NAME.search(path))


def placeholder_issue(subject):
    """The placeholder that stands for an issue number (bpo-0, or a made-up
    gh-NNNNN), if any."""
    if subject_has_placeholder(subject):
        return PLACEHOLDER
    match = PLACEHOLDER_RE.match(subject)
    return match.group(1) if match else None


def fill_issue_in_subject(subject, gh_issue):
    return _SUBJECT.sub("gh-%d: " % gh_issue, subject) if gh_issue else subject


def fill_issue_in_mail(text, gh_issue):
    """A patch mail with the placeholder turned into issue GH_ISSUE, in the
    subject and in the names of NEWS entries (diffstat and diff alike)."""
    if not gh_issue:
        return text
    text = _MAIL_SUBJECT.sub(r"\g<1>gh-%d:" % gh_issue, text)
    return _NEWS_NAME.sub(r"\g<1>.gh-issue-%d." % gh_issue, text)


def load_blurb():
    """blurb's command line as (the command, its version), or None."""
    command = [sys.executable, "-m", "blurb"]
    proc = run_command(command + ["--version"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return command, proc.stdout.split()[-1]


# The files by which `blurb` recognises the root of a CPython checkout.
STAND_IN_ROOT = {"README.rst": b"This is Python version 3.0\n",
                 "LICENSE": b"A. HISTORY OF THE SOFTWARE\n",
                 "Include/Python.h": b"", "Python/ceval.c": b""}


def validate(parser, path):
    """`blurb merge` of the one entry at PATH (a file under
    Misc/NEWS.d/next/<Section>/): (metadata, None) with the section and
    the issue blurb read, or (None, the problem)."""
    command, _version = parser
    path = Path(path)
    if not path.is_file():
        return None, "the file does not exist"
    with tempfile.TemporaryDirectory(prefix="zerocopy-blurb-") as root:
        entry = "Misc/NEWS.d/next/%s/%s" % (path.parent.name, path.name)
        files = dict(STAND_IN_ROOT, **{entry: path.read_bytes()})
        for name, data in files.items():
            Path(root, name).parent.mkdir(parents=True, exist_ok=True)
            Path(root, name).write_bytes(data)
        proc = subprocess.run(command + ["merge", "-f", "NEWS"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, errors="replace")
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [
                "exit status %d" % proc.returncode]
            start = max([n for n, text in enumerate(lines) if re.match(
                r"^[\w.]+(?:Error|Exception)\b", text)] or [0])
            detail = " ".join(" ".join(lines[start:]).split())
            return None, "blurb rejects it: %s" % re.sub(
                r"^[\w.]*\.(?=\w+Error)", "", detail)
        merged = Path(root, "NEWS").read_text(errors="replace")
    section = re.search(r"^(.+)\n-+\n\n- ", merged, re.M)
    if section is None:
        # blurb merge reads only the sections it knows, and skips others.
        return None, ("blurb merge reads no entry from it: Unknown section "
                      "%r (`blurb add --help` lists the sections)"
                      % path.parent.name)
    issue = re.search(r"^- ((?:gh|bpo)-\d+): ", merged, re.M)
    return {"section": section.group(1),
            "issue": issue.group(1) if issue else None}, None
