"""The patch series of a release line: patches/<line>/series and its patches.

The series file lists the patches in the order they apply, one per line,
quilt-style ('#' starts a comment).  Every patch is a `git format-patch`
mail of one commit, files it adds included, so `git am` of the patches on
the base gives the tree `tools apply` makes.
"""

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .errors import Failure, UsageError
from .gitutil import run as run_command

HEADER = """\
# Patches against CPython {line}, in the order they apply (`git am` them in
# this order).  Each patch carries the files it adds; readable copies are in
# new-files/{line}/.  Written by `python3 -m tools refresh`.
"""


@dataclass
class Patch:
    name: str
    path: Path

    def text(self):
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError("the series names %s, but %s does not exist"
                             % (self.name, self.path)) from None

    def header(self):
        return parse_header(self.text(), self.name)

    def touched_files(self):
        """Files the diff of this patch changes, the ones it adds included."""
        # Lines joined with plain newlines, so that $ matches before CRLF.
        text = "\n".join(self.text().splitlines())
        paths = re.findall(r"^diff --git a/(\S+) b/\S+$", text, re.M)
        return list(dict.fromkeys(paths))

    @cached_property
    def _created(self):
        self.header()       # a UsageError names a patch that is no mail
        proc = run_command(["git", "apply", "--summary", "-"],
                           input=self.text(), check=False)
        if proc.returncode != 0:
            # Exit 1, as when apply meets the same corrupt patch.
            detail = (proc.stderr.strip().splitlines() or ["?"])[0]
            corrupt = re.search(r"corrupt patch at line (\d+)", detail)
            raise Failure("%s is corrupt at line %s" % (
                self.name, corrupt.group(1)) if corrupt else
                "%s is not a patch git can read: %s"
                % (self.name, detail.replace("error: ", "")))
        return re.findall(r"^ create mode (\d+) (.+)$", proc.stdout, re.M)

    def created_files(self):
        """(mode, path) of the files this patch adds, as git apply reads them."""
        return list(self._created)

    def adds(self):
        """Paths of the files this patch adds."""
        return [path for _mode, path in self.created_files()]


@dataclass
class Series:
    directory: Path
    patches: list

    @classmethod
    def load(cls, directory, nonempty=False):
        """The series of DIRECTORY; with NONEMPTY, UsageError when it lists
        no patch (the verbs that work on patches)."""
        directory = Path(directory)
        series_file = directory / "series"
        if not series_file.exists():
            raise UsageError("no series file at %s" % series_file)
        patches = []
        for number, raw in enumerate(series_file.read_text().splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            if raw[0] in " \t":
                raise UsageError(
                    "%s:%d: an indented line (a file kept outside its patch) "
                    "is the old layout: convert it by running `python3 -m "
                    "tools apply` in a checkout of commit 3d464d8, then "
                    "`python3 -m tools refresh` in one of 0c2a2ef (`git "
                    "worktree add DIR COMMIT` makes each), both with "
                    "--workspace naming this workspace and --base its line"
                    % (series_file, number))
            name = raw.strip()
            if not re.match(r"^\d{4}-[\w.+-]+\.patch$", name):
                raise UsageError("%s:%d: %r is not a patch file name like "
                                 "0001-subject.patch" % (series_file, number, name))
            patches.append(Patch(name, directory / name))
        if nonempty and not patches:
            raise UsageError("patches/%s/series lists no patch"
                             % directory.name)
        return cls(directory, patches)

    def write(self, line_name):
        lines = [HEADER.format(line=line_name)]
        lines.extend(patch.name + "\n" for patch in self.patches)
        (self.directory / "series").write_text("".join(lines))

    def touched_files(self):
        """Every base file some patch modifies, in first-touched order (the
        files the series adds are not the base's)."""
        seen = []
        added = set()
        for patch in self.patches:
            added.update(patch.adds())
            seen += [p for p in patch.touched_files() if p not in added]
        return list(dict.fromkeys(seen))

    def fingerprint(self):
        """Hash of everything apply reads: the patches, in order."""
        digest = hashlib.sha256()
        for patch in self.patches:
            digest.update(patch.name.encode())
            digest.update(patch.path.read_bytes())
        return digest.hexdigest()


def parse_header(text, name="patch"):
    """Author, date and message of a git format-patch mail, read by
    email.parser (RFC 2047 encoded words decoded, folded lines unfolded)."""
    if not text.startswith("From "):
        raise UsageError("%s is not a git format-patch file (no 'From ' line)"
                         % name)
    mail = email.message_from_string(text.split("\n", 1)[1],
                                     policy=email.policy.default)
    for required in ("from", "date", "subject"):
        if mail[required] is None:
            raise UsageError("%s has no %s: header" % (name, required.title()))
    authors = mail["from"].addresses
    if len(authors) != 1 or not authors[0].addr_spec:
        raise UsageError("%s: cannot read the author in 'From: %s'"
                         % (name, mail["from"]))
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", str(mail["subject"]))
    body = re.split(r"^(?:---|diff --git .*)$", mail.get_content(), 1,
                    flags=re.M)[0].rstrip()
    return {
        "author_name": authors[0].display_name,
        "author_email": authors[0].addr_spec,
        # As written: the policy would re-render a parsed date.
        "date": dict(mail.raw_items())["Date"].strip(),
        "subject": subject,
        "message": subject + ("\n\n" + body if body else "") + "\n",
    }


def failed_hunk(text, stderr):
    """(path, hunk number or None, its old start line) of the hunk of the
    patch TEXT that git apply or git am reports in STDERR, or None."""
    failed = re.search(r"patch failed: (\S+):(\d+)", stderr)
    if not failed:
        return None
    path, start = failed.group(1), int(failed.group(2))
    current, count = None, 0
    for line in text.splitlines():
        match = re.match(r"^diff --git a/(\S+) b/", line)
        if match:
            current, count = match.group(1), 0
            continue
        match = re.match(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if match and current:
            count += 1
            if (current, int(match.group(1))) == (path, start):
                return path, count, start
    return path, None, start
