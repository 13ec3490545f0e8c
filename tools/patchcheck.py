"""Check the series the way CPython's `make patchcheck` checks a change.

For every patch of patches/<line>/series, on the lines it adds (the files
it adds included: they are part of the patch):

  whitespace   no trailing whitespace in C, Python and documentation lines,
               no tabs in C lines nor in Python indentation, a newline at
               the end of every added or changed C, Python and .rst file
  NEWS         a Misc/NEWS.d/next/<Section>/<file>.rst entry, accepted by
               blurb when blurb is installed, for the issue of the subject
  docs         something under Doc/ when the patch changes public API: new
               or changed module-level names of Lib/ modules, names added
               to __all__, new C API in Include/ (a later patch of the series
               that documents the same names also counts, and is named)
  configure    configure regenerated when configure.ac changes
  clinic       Modules/clinic/<file>.c.h regenerated with Argument Clinic
               when the patch adds a [clinic input] block to Modules/<file>.c
  issue        the subject names a real issue (not the placeholder bpo-0
               of tools/news.py, nor a made-up gh-NNNNN) and the NEWS
               entry is about the same one
  header       a git format-patch header whose subject reads like upstream's
               (`bpo-NNNNN: Add ...`, `gh-NNNNN: Add ...`, or a plain
               imperative heading such as `Add ...` or `pickle: add ...`)
               and a body that explains why

and, for the whole series: the copies in new-files/<line>/ are exactly the
files the patches add (tools/newfiles.py), and no compiler warnings in the
files it touches, as recorded by the last `python3 -m tools check` or
`python3 -m tools build` of the current series (without a current record
the check is skipped, loudly).

Exits 1 when there is a problem.  `--waive NNNN:CHECK` accepts the named
problem of one patch (for hooks that must pass while a patch is known to be
incomplete); waived problems are still printed.
"""

import json
import re
from dataclasses import dataclass, field

from . import newfiles, news
from .errors import Failure, ToolError, UsageError
from .series import Series, parse_header

# The checks of one patch, by the names --waive uses.
CHECKS = ("header", "issue", "whitespace", "news", "docs", "configure",
          "clinic")
C_SUFFIXES = (".c", ".h")
DOC_SUFFIXES = (".rst", ".inc")
ISSUE = r"(?:bpo|gh)-\d+"
SUBJECT_RE = re.compile(r"^(?:(?P<issues>%s(?:,\s*%s)*):\s+)?(?P<rest>.+)$"
                        % (ISSUE, ISSUE))
# `gh-NNNNN:` and the like, written before the issue exists.
PLACEHOLDER_RE = re.compile(r"^((?:bpo|gh)-(?!\d+\s*:)[^\s:]+)\s*:")
AREA_RE = re.compile(r"^(?P<area>[a-z_][\w./-]*):\s+(?P<heading>.+)$")
# Words ending in -ed or -ing that are imperatives all the same.
NOT_PAST = {"embed", "feed", "need", "seed", "shed", "speed", "bring",
            "string", "ring"}
PY_DEF_RE = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z]\w*)")
PY_ASSIGN_RE = re.compile(r"^([A-Za-z]\w*)\s*(?::[^=]*)?=(?!=)")
ALL_RE = re.compile(r"__all__\s*(?:\+?=|\.append|\.extend|\.insert)")
C_API_RE = re.compile(r"PyAPI_(?:FUNC|DATA)\s*\([^)]*\)\s*\**\s*([A-Za-z]\w*)")
C_MACRO_RE = re.compile(r"^#\s*define\s+(Py[A-Z]\w*)")


def add_arguments(parser):
    parser.add_argument("--waive", action="append", default=[],
                        metavar="NNNN:CHECK",
                        help="accept the CHECK problem of patch NNNN (checks: "
                             "%s); repeatable" % ", ".join(CHECKS))


# -- reading patches ----------------------------------------------------------

@dataclass
class FileDiff:
    path: str
    new_file: bool = False
    deleted: bool = False
    added: list = field(default_factory=list)     # (new line number, text)
    removed: list = field(default_factory=list)   # text
    no_newline_at_end: bool = False               # of the new side


def parse_diff(text):
    """The files of a git diff with the lines each adds and removes."""
    files = []
    current = None
    old_left = new_left = 0
    number = 0
    last = None
    for raw in text.split("\n"):
        if old_left > 0 or new_left > 0:
            tag, body = raw[:1], raw[1:]
            if tag == "+":
                current.added.append((number, body))
                number += 1
                new_left -= 1
            elif tag == "-":
                current.removed.append(body)
                old_left -= 1
            elif tag == " " or raw == "":
                number += 1
                old_left -= 1
                new_left -= 1
            elif tag == "\\":
                pass
            last = tag
            continue
        if raw.startswith("\\") and current is not None:
            # "\ No newline at end of file" after the last line of a hunk.
            if last in ("+", " "):
                current.no_newline_at_end = True
            continue
        match = re.match(r"^diff --git a/(\S+) b/(\S+)$", raw)
        if match:
            current = FileDiff(match.group(2))
            files.append(current)
            last = None
            continue
        if current is None:
            continue
        if raw.startswith("new file mode"):
            current.new_file = True
        elif raw.startswith("deleted file mode"):
            current.deleted = True
        hunk = re.match(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", raw)
        if hunk:
            old_left = int(hunk.group(1)) if hunk.group(1) is not None else 1
            number = int(hunk.group(2))
            new_left = int(hunk.group(3)) if hunk.group(3) is not None else 1
    return files


# -- the checks of one patch ------------------------------------------------

def check_whitespace(diffs):
    problems = []
    counts = {"C": 0, "Python": 0, "doc": 0}
    for diff in diffs:
        path = diff.path
        if path.endswith(C_SUFFIXES):
            kind = "C"
        elif path.endswith(".py"):
            kind = "Python"
        elif path.endswith(DOC_SUFFIXES):
            kind = "doc"
        else:
            continue
        if diff.deleted:
            continue
        counts[kind] += 1
        for number, text in diff.added:
            where = "%s:%d" % (path, number)
            if text != text.rstrip():
                problems.append("%s: trailing whitespace" % where)
            if kind == "C" and "\t" in text:
                problems.append("%s: tab character in C code" % where)
            if kind == "Python" and "\t" in text[:len(text) - len(text.lstrip())]:
                problems.append("%s: tab in Python indentation" % where)
        if diff.no_newline_at_end:
            problems.append("%s: no newline at the end of the file" % path)
        if diff.new_file and kind == "Python" and diff.added and \
                not diff.added[-1][1].strip():
            problems.append("%s: blank line(s) at the end of the file" % path)
    summary = ", ".join("%d %s file(s)" % (n, kind) for kind, n in counts.items())
    return problems, summary


def module_name(path):
    name = path[len("Lib/"):-len(".py")].replace("/", ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def public_api(diffs):
    """Public API a patch adds or changes, as a list of (name, how)."""
    found = []
    for diff in diffs:
        path = diff.path
        if path.startswith("Lib/") and path.endswith(".py") and \
                not path.startswith(("Lib/test/", "Lib/idlelib/idle_test/")) \
                and "/tests/" not in path and not diff.deleted:
            module = module_name(path)
            removed = {}
            for text in diff.removed:
                match = PY_DEF_RE.match(text) or PY_ASSIGN_RE.match(text)
                if match:
                    removed[match.group(1)] = text.strip()
            for _, text in diff.added:
                if ALL_RE.search(text):
                    for name in re.findall(r"""["']([A-Za-z]\w*)["']""", text):
                        found.append(("%s.%s" % (module, name),
                                      "added to %s.__all__" % module))
                match = PY_DEF_RE.match(text)
                if match and not match.group(1).startswith("_"):
                    name = match.group(1)
                    if name not in removed:
                        found.append(("%s.%s" % (module, name), "new"))
                    elif removed[name] != text.strip():
                        found.append(("%s.%s" % (module, name),
                                      "changed signature"))
                    continue
                match = PY_ASSIGN_RE.match(text)
                if match and not match.group(1).startswith("_") and \
                        match.group(1) not in removed and \
                        match.group(1) != "__all__":
                    found.append(("%s.%s" % (module, match.group(1)), "new"))
        elif path.startswith("Include/") and path.endswith(".h") and \
                not path.startswith("Include/internal/") and not diff.deleted:
            removed_text = "\n".join(diff.removed)
            for _, text in diff.added:
                for regex in (C_API_RE, C_MACRO_RE):
                    match = regex.search(text)
                    if match and not match.group(1).startswith("_") and \
                            not match.group(1).endswith("_H") and \
                            match.group(1) not in removed_text:
                        found.append((match.group(1), "new C API"))
    unique = {}
    for name, how in found:
        unique.setdefault(name, how)
    return list(unique.items())


def placeholder_issue(subject):
    """The placeholder that stands for an issue number (bpo-0, or a made-up
    gh-NNNNN), if any."""
    if news.subject_has_placeholder(subject):
        return news.PLACEHOLDER
    match = PLACEHOLDER_RE.match(subject)
    return match.group(1) if match else None


def check_subject(subject):
    """Problems with a subject line, against upstream's style."""
    problems = []
    placeholder = placeholder_issue(subject)
    if placeholder:
        # Reported by the issue check; judge the rest of the subject here.
        subject = subject[len(placeholder):].lstrip(": ")
    match = SUBJECT_RE.match(subject)
    rest = match.group("rest")
    heading = rest
    area = None
    area_match = AREA_RE.match(rest)
    if area_match:
        area, heading = area_match.group("area"), area_match.group("heading")
    if not match.group("issues") and not placeholder:
        if re.match(r"^(?:bpo|gh|issue)[- #]?\d+", rest, re.I):
            problems.append("subject %r: write the issue as `bpo-NNNNN: ...` "
                            "or `gh-NNNNN: ...`" % subject)
            return problems
    word = re.match(r"[A-Za-z]+", heading)
    if not word:
        problems.append("subject %r: the heading should start with a verb"
                        % subject)
        return problems
    first = word.group(0)
    if area is None and not first[0].isupper():
        problems.append("subject %r: start the heading with a capital letter"
                        % subject)
    lower = first.lower()
    if lower not in NOT_PAST and (lower.endswith("ed") or lower.endswith("ing")):
        problems.append("subject %r: write the heading in the imperative "
                        "(%r reads as a report, not a command)" % (subject, first))
    if subject.rstrip().endswith("."):
        problems.append("subject %r: no full stop at the end" % subject)
    return problems


@dataclass
class Result:
    patch: object
    items: list = field(default_factory=list)   # (status, check, text)

    def add(self, status, check, text):
        self.items.append((status, check, text))


def check_patch(ws, series, index, parser, added_root):
    patch = series.patches[index]
    result = Result(patch)
    text = patch.text()
    try:
        header = parse_header(text, patch.name)
    except UsageError as exc:
        result.add("FAIL", "header", exc.message)
        header = None
    subject_issues = []
    if header is not None:
        problems = check_subject(header["subject"])
        for problem in problems:
            result.add("FAIL", "header", problem)
        if not problems:
            result.add("ok", "header", "subject: %s" % header["subject"])
        subject_issues = re.findall(ISSUE, SUBJECT_RE.match(
            header["subject"]).group("issues") or "")
        placeholder = placeholder_issue(header["subject"])
        if placeholder:
            result.add("FAIL", "issue", "the subject names no issue but the "
                       "placeholder %r: open the issue upstream and use its "
                       "number (or drop the prefix for a plain heading)"
                       % placeholder)
        body = header["message"].split("\n", 1)[1].strip() \
            if "\n" in header["message"] else ""
        if not body:
            result.add("FAIL", "header", "the message has no body: explain "
                       "why the change is needed, below the subject")
        elif body == header["subject"]:
            result.add("FAIL", "header", "the body only repeats the subject: "
                       "explain why the change is needed")
        else:
            result.add("ok", "header", "message body: %d line(s)"
                       % len(body.splitlines()))
    diffs = parse_diff(text)
    problems, summary = check_whitespace(diffs)
    for problem in problems:
        result.add("FAIL", "whitespace", problem)
    if not problems:
        result.add("ok", "whitespace", summary)
    try:
        entries = news.patch_entries(patch)
    except ToolError as exc:
        entries = None
        if header is not None:
            result.add("FAIL", "header", exc.message)
    if entries is not None:
        check_news(entries, parser, subject_issues, result, added_root)
    for path in entries or []:
        if news.path_has_placeholder(path):
            result.add("FAIL", "issue", "%s stands for an issue that does not "
                       "exist yet (%s): open the issue upstream and rename "
                       "the entry" % (path, news.PLACEHOLDER))
    paths = [diff.path for diff in diffs]
    check_docs(series, index, diffs, paths, result)
    if "configure.ac" in paths and "configure" not in paths:
        result.add("FAIL", "configure", "configure.ac changes but configure "
                   "was not regenerated (autoreconf)")
    if "configure.ac" in paths and "pyconfig.h.in" not in paths:
        result.add("info", "configure", "configure.ac changes and "
                   "pyconfig.h.in does not: fine unless an AC_DEFINE changed")
    for diff in diffs:
        match = re.match(r"^Modules/(?:(.+)/)?([^/]+)\.c$", diff.path)
        if not match or not any("[clinic input]" in t for _, t in diff.added):
            continue
        generated = "Modules/%sclinic/%s.c.h" % (
            match.group(1) + "/" if match.group(1) else "", match.group(2))
        if generated not in paths:
            result.add("FAIL", "clinic", "%s gains a [clinic input] block but "
                       "%s was not regenerated (Tools/clinic/clinic.py)"
                       % (diff.path, generated))
    if "Misc/ACKS" not in paths:
        result.add("info", "news", "Misc/ACKS not updated (fine for the "
                   "team's own patches)")
    return result


def check_news(found, parser, subject_issues, result, added_root):
    if not found:
        result.add("FAIL", "news", "no NEWS entry: add one with `blurb add` "
                   "(Misc/NEWS.d/next/<Section>/...rst) and commit it with "
                   "the patch")
        return
    for path in found:
        if parser is None:
            result.add("info", "news", "%s present; not validated: blurb is "
                       "not installed (%s)" % (path, news.INSTALL_HINT))
            continue
        metadata, problem = news.validate(parser, added_root / path)
        if problem:
            result.add("FAIL", "news", "%s: %s" % (path, problem))
            continue
        issue = news.issue_of(metadata) or (
            news.PLACEHOLDER if news.path_has_placeholder(path) else None)
        if subject_issues and issue not in subject_issues:
            result.add("FAIL", "issue", "%s is about %s, the subject about %s"
                       % (path, issue, ", ".join(subject_issues)))
            continue
        result.add("ok", "news", "%s (blurb: %s, %s)"
                   % (path, metadata.get("section"), issue))


def doc_lines(diffs):
    return "\n".join(text for diff in diffs if diff.path.startswith("Doc/")
                     for _, text in diff.added)


def check_docs(series, index, diffs, paths, result):
    api = public_api(diffs)
    if not api:
        result.add("ok", "docs", "no public API change")
        return
    listed = ", ".join("%s (%s)" % item for item in api)
    if any(path.startswith("Doc/") for path in paths):
        result.add("ok", "docs", "Doc/ changed with the API: %s" % listed)
        return
    later = {}
    for other in series.patches[index + 1:]:
        text = doc_lines(parse_diff(other.text()))
        for name, _ in api:
            short = name.rsplit(".", 1)[-1]
            if short in text and name not in later:
                later[name] = other.name
    undocumented = [item for item in api if item[0] not in later]
    if undocumented:
        result.add("FAIL", "docs", "changes public API and nothing under Doc/:"
                   " %s" % ", ".join("%s (%s)" % item for item in undocumented))
    for name, where in sorted(later.items()):
        result.add("info", "docs", "%s is documented later, by %s"
                   % (name, where))


# -- compiler warnings, from the records of check and build -----------------

def recorded_warnings(ws, line, series):
    """(warnings, where) of a build of exactly this series, or (None, why)."""
    from . import basestore
    from .apply import read_record
    try:
        fingerprint = series.fingerprint()
    except OSError as exc:
        return None, "cannot read the series: %s" % exc
    check_record = ws.build_dir(line) / "check" / "warnings.json"
    if check_record.exists():
        data = json.loads(check_record.read_text())
        if data.get("fingerprint") == fingerprint:
            return data["warnings"], "the build of `tools check` (%s)" % data["log"]
    record = ws.read_interpreter(line)
    applied = read_record(ws, line)
    if record is None:
        return None, "no build of the series yet"
    current = (applied is not None and applied.get("upto") is None
               and record.get("head") == applied.get("head")
               and applied.get("patches") == {
                   p.name: basestore.sha256_file(p.path) for p in series.patches}
               and applied.get("added") == newfiles.copy_hashes(ws, line,
                                                                series))
    if not current:
        return None, "the last build is of an older state of the series"
    return (record.get("warnings_in_series_files", []),
            "the %s build of `tools build` (%s)" % (record.get("mode"),
                                                     record.get("log")))


# -- the verb -----------------------------------------------------------------

def parse_waivers(values):
    waivers = {}
    for value in values:
        number, _, check = value.partition(":")
        if check not in CHECKS or not number:
            raise UsageError("--waive %r is not NNNN:CHECK with CHECK one of %s"
                             % (value, ", ".join(CHECKS)))
        waivers.setdefault(number, set()).add(check)
    return waivers


def waived(waivers, patch_name, check):
    for key, checks in waivers.items():
        if check in checks and (patch_name == key or
                                patch_name.startswith(key + "-")):
            return True
    return False


def patchcheck(ws, line, waivers=(), out=print):
    """Run every check; (number of failing patches plus one when the series'
    files have compiler warnings, names of the failing patches)."""
    series = Series.load(ws.series_dir(line))
    if not series.patches:
        raise UsageError("patches/%s/series lists no patch" % line.name)
    waivers = parse_waivers(waivers)
    parser = news.load_blurb()
    out("patchcheck of patches/%s/series (%d patch(es) against CPython %s)"
        % (line.name, len(series.patches), line.reference))
    if parser is None:
        out("note: blurb is not installed, NEWS entries are only looked for, "
            "not validated: %s" % news.INSTALL_HINT)
    failing = []
    used = set()
    # A patch git cannot read fails its own header check below.
    with newfiles.extracted(series.patches, unreadable=[]) as added_root:
        results = [check_patch(ws, series, index, parser, added_root)
                   for index in range(len(series.patches))]
    for patch, result in zip(series.patches, results):
        out(patch.name)
        for status, check, text in result.items:
            if status == "FAIL" and waived(waivers, patch.name, check):
                status = "waived"
                used.add((patch.name, check))
            elif status == "FAIL" and patch.name not in failing:
                failing.append(patch.name)
            out("  %-6s %-10s %s" % (status, check, text))
    count = len(failing)
    try:
        copies = newfiles.copy_problems(ws, line, series)
    except ToolError as exc:
        copies = [("unreadable", "cannot compare new-files/%s with the "
                   "patches: %s" % (line.name, exc.message))]
    for _kind, message in copies:
        out("FAIL   copies     " + message)
    if copies:
        count += 1
    else:
        out("ok     copies     new-files/%s holds exactly the %d file(s) the "
            "patches add" % (line.name, len(newfiles.copy_files(ws, line))))
    warnings, where = recorded_warnings(ws, line, series)
    if warnings is None:
        out("SKIPPED compiler warnings: %s; run `python3 -m tools check%s` or "
            "`python3 -m tools build%s` and patchcheck again"
            % (where, base_option(line), base_option(line)))
    elif warnings:
        out("FAIL   warnings   %d compiler warning(s) in the series' files, "
            "in %s:" % (len(warnings), where))
        for text in warnings:
            out("         " + text)
        count += 1
    else:
        out("ok     warnings   no compiler warnings in the series' files, in %s"
            % where)
    for key, checks in waivers.items():
        for check in checks:
            if not any(name == key or name.startswith(key + "-")
                       for name, c in used if c == check):
                out("note: --waive %s:%s matches no problem any more; drop it"
                    % (key, check))
    return count, failing


def base_option(line):
    return "" if line.name == "3.7" else " --base " + line.name


def run(ws, line, args):
    count, failing = patchcheck(ws, line, args.waive)
    if count:
        names = ", ".join(failing) or "new-files/%s or the series' compiler " \
            "warnings" % line.name
        raise Failure("patchcheck: problems in %s" % names)
    print("patchcheck: no problems")
    return 0
