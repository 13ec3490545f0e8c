"""The patch series of a release line: patches/<line>/series and its patches.

The series file lists the patches in the order they apply, one per line,
in the spirit of quilt.  A patch that adds files to CPython names them on
indented lines below it; those files are kept in the workspace at their
CPython paths (Lib/, Modules/, Objects/, Misc/, ...) rather than inside the
patch, so they can be read, linted and reviewed as files::

    0001-bpo-35845-Add-memoryview.toreadonly.patch
        Misc/NEWS.d/next/Core_and_Builtins/2026-11-28-05-30-31.bpo-35845.07JyUP.rst

Lines starting with '#' are comments.
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

HEADER = """\
# Patches against CPython {line}, in the order they apply.
# An indented line names a file the patch above it adds; that file is kept
# in this workspace at the same path.  Written by `python3 -m tools refresh`.
"""


@dataclass
class Patch:
    name: str
    adds: list = field(default_factory=list)
    path: Path = None

    @property
    def number(self):
        return int(self.name.split("-", 1)[0])

    def text(self):
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError("the series names %s, but %s does not exist"
                             % (self.name, self.path)) from None

    def header(self):
        return parse_header(self.text(), self.name)

    def touched_files(self):
        """Files the diff of this patch modifies (not the ones it adds)."""
        return diff_paths(self.text())


@dataclass
class Series:
    directory: Path
    patches: list

    @classmethod
    def load(cls, directory):
        directory = Path(directory)
        series_file = directory / "series"
        if not series_file.exists():
            raise UsageError("no series file at %s" % series_file)
        patches = []
        for number, raw in enumerate(series_file.read_text().splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            if raw[0] in " \t":
                if not patches:
                    raise UsageError("%s:%d: an added file must follow a patch"
                                     % (series_file, number))
                patches[-1].adds.append(raw.strip())
                continue
            name = raw.strip()
            if not re.match(r"^\d{4}-[\w.+-]+\.patch$", name):
                raise UsageError("%s:%d: %r is not a patch file name like "
                                 "0001-subject.patch" % (series_file, number, name))
            patches.append(Patch(name, [], directory / name))
        return cls(directory, patches)

    def write(self, line_name):
        lines = [HEADER.format(line=line_name)]
        for patch in self.patches:
            lines.append(patch.name + "\n")
            lines.extend("    %s\n" % path for path in patch.adds)
        (self.directory / "series").write_text("".join(lines))

    def added_files(self):
        return [path for patch in self.patches for path in patch.adds]

    def touched_files(self):
        """Every base file some patch modifies, in first-touched order."""
        seen = {}
        for patch in self.patches:
            for path in patch.touched_files():
                seen.setdefault(path, None)
        return list(seen)

    def fingerprint(self, root):
        """Hash of everything apply reads: patches and added files."""
        digest = hashlib.sha256()
        for patch in self.patches:
            digest.update(patch.name.encode())
            digest.update(patch.path.read_bytes())
            for path in patch.adds:
                digest.update(path.encode())
                digest.update(Path(root, path).read_bytes())
        return digest.hexdigest()


def parse_header(text, name="patch"):
    """Author, date and message of a git format-patch mail."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("From "):
        raise UsageError("%s is not a git format-patch file (no 'From ' line)"
                         % name)
    headers = {}
    index = 1
    current = None
    while index < len(lines) and lines[index]:
        line = lines[index]
        if line[0] in " \t" and current:
            headers[current] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            current = key.strip().lower()
            headers[current] = value.strip()
        index += 1
    for required in ("from", "date", "subject"):
        if required not in headers:
            raise UsageError("%s has no %s: header" % (name, required.title()))
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", headers["subject"])
    body = []
    for line in lines[index + 1:]:
        if line == "---" or line.startswith("diff --git "):
            break
        body.append(line)
    while body and not body[-1].strip():
        body.pop()
    match = re.match(r"^(.*?)\s*<([^>]*)>$", headers["from"])
    if not match:
        raise UsageError("%s: cannot read the author in 'From: %s'"
                         % (name, headers["from"]))
    return {
        "author_name": match.group(1).strip('"'),
        "author_email": match.group(2),
        "date": headers["date"],
        "subject": subject,
        "message": subject + ("\n\n" + "\n".join(body) if body else "") + "\n",
    }


def diff_paths(text):
    """Paths whose content a patch changes (renames and additions included)."""
    paths = []
    for line in text.splitlines():
        match = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
        if match and match.group(1) not in paths:
            paths.append(match.group(1))
    return paths


def hunks(text):
    """(path, hunk number, old start line) for every hunk of a patch."""
    result = []
    path = None
    count = 0
    for line in text.splitlines():
        match = re.match(r"^diff --git a/(\S+) b/", line)
        if match:
            path, count = match.group(1), 0
            continue
        match = re.match(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if match and path:
            count += 1
            result.append((path, count, int(match.group(1))))
    return result
