"""Check the series the way CPython checks a change, with CPython's tools.

For every patch of patches/<line>/series:

  header      a format-patch mail whose body says why, not only the subject
  news        a Misc/NEWS.d/next/<Section>/<file>.rst entry blurb reads
  issue       the subject names a real issue (not the placeholder bpo-0)
              and the NEWS entry is about the same one
  whitespace  on the patch's commit of the applied tree: the base's own
  configure   patchcheck (Tools/scripts/ or Tools/patchcheck/) and `git
              diff --check`
  docs        something under Doc/, in the patch or a later one, when the
              patch adds or changes public API of Lib/ or Include/

For the whole series: patches/<line>-overlay/ applies after it, the copies
in new-files/<line>/ are exactly the files the patches add, and the last
`tools check` or `tools build` of this series recorded no compiler warning
in its files.  Checks that need a base or a build are skipped, loudly.
Exits 1 on a problem; `--waive NNNN:CHECK` accepts one patch's problem
(still printed).
"""

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .model import basestore, newfiles, news
from .model.errors import Failure, ToolError, UsageError
from .model.gitutil import git, git_out
from .model.series import Series
from .model.tree import (apply_downstream, apply_series, is_current,
                         read_record)
from .model.workspace import base_option

# The checks of one patch, by the names --waive uses.
CHECKS = ("header", "issue", "whitespace", "news", "docs", "configure")
ISSUE_RE = re.compile(r"^((?:bpo|gh)-\d+(?:,\s*(?:bpo|gh)-\d+)*):")
# Where CPython keeps its patchcheck: 3.7, and 3.12 on.
TOOL_PATHS = ("Tools/scripts/patchcheck.py", "Tools/patchcheck/patchcheck.py")
# Runs the base's patchcheck.py as `make patchcheck` does, but on the tree
# it is in rather than on the source directory of the interpreter that runs
# it, and with the commit as the checkout's change (`git status`) rather
# than a pull request's branch.
DRIVER = """\
import os, sys
script, tree = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
import patchcheck
patchcheck.SRCDIR = tree
patchcheck.get_base_branch = lambda: None
patchcheck.main()
"""
C_API_RE = re.compile(r"PyAPI_(?:FUNC|DATA)\s*\([^)]*\)\s*\**\s*([A-Za-z]\w*)"
                      r"|^#\s*define\s+(Py[A-Z]\w*)", re.M)


def add_arguments(parser):
    parser.add_argument("--waive", action="append", default=[],
                        metavar="NNNN:CHECK",
                        help="accept the CHECK problem of patch NNNN (checks: "
                             "%s); repeatable" % ", ".join(CHECKS))


# -- what the patch says of itself ------------------------------------------

def check_mail(patch, parser, added_root, add):
    """header, issue and news, from the patch alone."""
    try:
        header = patch.header()
    except UsageError as exc:
        add("FAIL", "header", exc.message)
        return
    subject = header["subject"]
    body = header["message"].partition("\n")[2].strip()
    if not body:
        add("FAIL", "header", "the message has no body: explain why the "
            "change is needed, below the subject")
    elif body == subject:
        add("FAIL", "header", "the body only repeats the subject: explain "
            "why the change is needed")
    else:
        add("ok", "header", "subject: %s; body: %d line(s)"
            % (subject, len(body.splitlines())))
    placeholder = news.placeholder_issue(subject)
    if placeholder:
        add("FAIL", "issue", "the subject names no issue but the placeholder "
            "%r: open the issue upstream and use its number (or drop the "
            "prefix for a plain heading)" % placeholder)
    issued = ISSUE_RE.match(subject)
    issues = re.split(r",\s*", issued[1]) if issued and not placeholder else []
    try:
        entries = news.patch_entries(patch)
    except ToolError as exc:
        add("FAIL", "header", exc.message)
        return
    if not entries:
        add("FAIL", "news", "no NEWS entry: add one with `blurb add` "
            "(Misc/NEWS.d/next/<Section>/...rst) and commit it with the patch")
    for path in entries:
        if news.path_has_placeholder(path):
            add("FAIL", "issue", "%s stands for an issue that does not exist "
                "yet (%s): open the issue upstream and rename the entry"
                % (path, news.PLACEHOLDER))
        if parser is None:
            add("info", "news", "%s present; not validated: blurb is not "
                "installed (%s)" % (path, news.INSTALL_HINT))
            continue
        metadata, problem = news.validate(parser, added_root / path)
        if problem:
            add("FAIL", "news", "%s: %s" % (path, problem))
            continue
        issue = metadata["issue"] or (
            news.PLACEHOLDER if news.path_has_placeholder(path) else None)
        if issues and issue not in issues:
            add("FAIL", "issue", "%s is about %s, the subject about %s"
                % (path, issue, ", ".join(issues)))
        else:
            add("ok", "news", "%s (blurb: %s, %s)"
                % (path, metadata["section"], issue))


# -- the commits of the applied tree ----------------------------------------

def run_base_patchcheck(src, script, add):
    """The base's patchcheck.py on the checkout SRC, its verdicts as items."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, script, str(src)],
                          cwd=str(src), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        add("FAIL", "whitespace", "%s did not run: %s" % (script, (
            proc.stdout.strip().splitlines() or ["?"])[-1]))
        return
    lines = proc.stdout.splitlines()
    clean = True
    for number, text in enumerate(lines):
        fixed = re.match(r"^Fixing (.+) whitespace \.\.\. (\d+) file", text)
        if fixed and fixed.group(2) != "0":
            clean = False
            paths = [l.strip() for l in lines[number + 1:][:int(fixed[2])]]
            add("FAIL", "whitespace", "%s: %s whitespace to fix in %s (`make "
                "patchcheck` fixes it)" % (script, fixed.group(1),
                                           ", ".join(paths)))
        if re.match(r"^configure regenerated \.\.\. no$", text):
            add("FAIL", "configure", "%s: configure.ac changes but configure "
                "was not regenerated (autoreconf)" % script)
        elif re.match(r"^(pyconfig\.h\.in regenerated|Misc/ACKS updated)"
                      r" \.\.\. (no|NO)$", text):
            add("info", "configure" if "pyconfig" in text else "news",
                "%s: %s" % (script, text))
    if clean:
        add("ok", "whitespace", "%s: the whitespace of the Python, C and "
            "doc files is clean" % script)


def public_names(source):
    """{name: what it is} of the public module-level names of a Lib/
    module (a function's signature), and "NAME in __all__" for the names
    its __all__ lists."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = ast.dump(node.args)
        elif isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign)
                           else [node.target]):
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, "value")
        if any(isinstance(n, ast.Name) and n.id == "__all__"
               for n in ast.walk(node)):
            for item in ast.walk(node):
                if isinstance(item, ast.Constant) and isinstance(item.value,
                                                                 str):
                    names[item.value + " in __all__"] = "listed"
    return {name: how for name, how in names.items()
            if not name.startswith("_")}


def api_changes(src, commit):
    """(name, how) of the public API COMMIT adds or changes."""
    found = {}
    for path in git_out(src, "diff", "--name-only", "--diff-filter=AM",
                        commit + "~1", commit).split():
        def show(rev):
            return git(src, "show", "%s:%s" % (rev, path),
                       check=False).stdout
        if path.startswith("Lib/") and path.endswith(".py") and not \
                path.startswith(("Lib/test/", "Lib/idlelib/idle_test/")):
            module = path[4:-3].replace("/", ".").replace(".__init__", "")
            before, after = public_names(show(commit + "~1")), \
                public_names(show(commit))
            for name, how in after.items():
                short = name.split(" ")[0]
                qualified = "%s.%s" % (module, short)
                if name not in before:
                    found.setdefault(qualified, "new" if short == name else
                                     "added to %s.__all__" % module)
                elif short == name and before[name] != how:
                    found.setdefault(qualified, "changed signature")
        elif path.startswith("Include/") and path.endswith(".h") and \
                not path.startswith("Include/internal/"):
            def declared(rev):
                return {a or b for a, b in C_API_RE.findall(show(rev))}
            for name in sorted(declared(commit) - declared(commit + "~1")):
                if not name.startswith("_") and not name.endswith("_H"):
                    found.setdefault(name, "new C API")
    return list(found.items())


def check_commits(ws, line, series, adds):
    """whitespace, configure and docs on each commit of the applied tree."""
    base = basestore.select(ws, line)
    if base is None:
        return "no base imported"
    src = ws.build_dir(line) / "check" / "patchcheck"
    try:
        apply_series(ws, line, src=src)
    except ToolError as exc:
        return "the series does not apply: %s" % exc.message
    script = next((p for p in TOOL_PATHS if (src / p).is_file()), None)
    commits = git_out(src, "rev-list", "--reverse",
                      "refs/zerocopy/base..HEAD").split()
    docs = [[p for p in git_out(src, "diff", "--name-only", c + "~1", c)
             .split() if p.startswith("Doc/")] for c in commits]
    for index, (commit, add) in enumerate(zip(commits, adds)):
        check = git(src, "diff", "--check", commit + "~1", commit,
                    check=False).stdout.splitlines()
        problems = [text for text in check if not text.startswith(("+", "-"))]
        for text in problems:
            add("FAIL", "whitespace", "git diff --check: " + text)
        if not problems:
            add("ok", "whitespace", "git diff --check: clean")
        if script:
            git(src, "checkout", "--quiet", "--force", commit)
            git(src, "reset", "--quiet", "--soft", commit + "~1")
            run_base_patchcheck(src, script, add)
            git(src, "reset", "--quiet", "--hard", commit)
            git(src, "clean", "--quiet", "-fdx")
        api = api_changes(src, commit)
        listed = ", ".join("%s (%s)" % item for item in api)
        if not api:
            add("ok", "docs", "no public API change")
        elif docs[index]:
            add("ok", "docs", "Doc/ changed with the API: %s" % listed)
        else:
            later = {}
            for other in range(index + 1, len(commits)):
                text = git_out(src, "diff", commits[other] + "~1",
                               commits[other], "--", *docs[other]) \
                    if docs[other] else ""
                for name, _ in api:
                    if name.rsplit(".", 1)[-1] in text:
                        later.setdefault(name, series.patches[other].name)
            missing = [item for item in api if item[0] not in later]
            if missing:
                add("FAIL", "docs", "changes public API and nothing under "
                    "Doc/: %s" % ", ".join("%s (%s)" % item for item in missing))
            for name, where in sorted(later.items()):
                add("info", "docs", "%s is documented later, by %s"
                    % (name, where))
    return None if script else "%s has none of %s" % (base.label(),
                                                     ", ".join(TOOL_PATHS))


def check_downstream(ws, line):
    """The downstream patches of patches/<line>-overlay/ apply, as the
    overlay build applies them, to the Lib/ of the whole series (as
    check_commits left it); 1 when they do not."""
    directory = ws.overlay_series_dir(line)
    src = ws.build_dir(line) / "check" / "patchcheck"
    if not (directory / "series").exists() or not (src / ".git").exists():
        return 0
    with tempfile.TemporaryDirectory(prefix="zerocopy-downstream-") as lib:
        try:
            for patch in Series.load(directory).patches:
                for path in patch.touched_files():
                    if path.startswith("Lib/") and (src / path).is_file():
                        Path(lib, path[4:]).parent.mkdir(parents=True,
                                                         exist_ok=True)
                        shutil.copyfile(src / path, Path(lib, path[4:]))
            names = apply_downstream(ws, line, lib)
        except ToolError as exc:
            print("FAIL   downstream " + exc.message)
            return 1
    print("ok     downstream %s: %s appl%s after the series"
          % (directory.relative_to(ws.root), ", ".join(names),
             "ies" if len(names) == 1 else "y"))
    return 0


# -- compiler warnings, from the records of check and build -----------------

def recorded_warnings(ws, line, series):
    """(warnings, where) of a build of exactly this series, or (None, why)."""
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
    if not is_current(ws, line, series, applied) or \
            record.get("head") != applied.get("head"):
        return None, "the last build is of an older state of the series"
    return (record.get("warnings_in_series_files", []),
            "the %s build of `tools build` (%s)" % (record.get("mode"),
                                                     record.get("log")))


# -- the verb -----------------------------------------------------------------

def run(ws, line, args):
    series = Series.load(ws.series_dir(line), nonempty=True)
    waivers = {}
    for value in args.waive:
        number, _, check = value.partition(":")
        if check not in CHECKS or not number:
            raise UsageError("--waive %r is not NNNN:CHECK with CHECK one of %s"
                             % (value, ", ".join(CHECKS)))
        waivers.setdefault(number, set()).add(check)
    parser = news.load_blurb()
    print("patchcheck of patches/%s/series (%d patch(es) against CPython %s)"
          % (line.name, len(series.patches), line.reference))
    if parser is None:
        print("note: blurb is not installed, NEWS entries are only looked "
              "for, not validated: %s" % news.INSTALL_HINT)
    failing = []
    used = set()
    results = [[] for _patch in series.patches]
    adds = [lambda *item, into=items: into.append(item) for items in results]
    # A patch git cannot read fails its own header check below.
    with newfiles.extracted(series.patches, unreadable=[]) as added_root:
        for patch, add in zip(series.patches, adds):
            check_mail(patch, parser, added_root, add)
    skipped = check_commits(ws, line, series, adds)
    for patch, items in zip(series.patches, results):
        print(patch.name)
        for status, check, text in items:
            # --waive's NNNN (or a full name) names the patch.
            keys = [key for key, checks in waivers.items()
                    if check in checks and (patch.name == key or
                                            patch.name.startswith(key + "-"))]
            if status == "FAIL" and keys:
                status = "waived"
                used.update((key, check) for key in keys)
            elif status == "FAIL" and patch.name not in failing:
                failing.append(patch.name)
            print("  %-6s %-10s %s" % (status, check, text))
    count = len(failing)
    if skipped != "no base imported":
        count += check_downstream(ws, line)
    if skipped:
        print("SKIPPED %s: %s; `python3 -m tools base download%s` enables it"
              % ("the base's own patchcheck" if skipped.startswith("CPython")
                 else "whitespace, configure and docs of each commit",
                 skipped, base_option(line)))
    try:
        copies = newfiles.copy_problems(ws, line, series)
    except ToolError as exc:
        copies = [("unreadable", "cannot compare new-files/%s with the "
                   "patches: %s" % (line.name, exc.message))]
    for _kind, message in copies:
        print("FAIL   copies     " + message)
    if not copies:
        print("ok     copies     new-files/%s holds exactly the %d file(s) "
              "the patches add" % (line.name,
                                   len(newfiles.copy_files(ws, line))))
    else:
        count += 1
    warnings, where = recorded_warnings(ws, line, series)
    if warnings is None:
        print("SKIPPED compiler warnings: %s; run `python3 -m tools check%s` "
              "or `python3 -m tools build%s` and patchcheck again"
              % (where, base_option(line), base_option(line)))
    elif warnings:
        print("FAIL   warnings   %d compiler warning(s) in the series' files, "
              "in %s:" % (len(warnings), where))
        for text in warnings:
            print("         " + text)
        count += 1
    else:
        print("ok     warnings   no compiler warnings in the series' files, "
              "in %s" % where)
    for key, checks in waivers.items():
        for check in checks:
            if (key, check) not in used:
                print("note: --waive %s:%s matches no problem any more; drop "
                      "it" % (key, check))
    if count:
        names = ", ".join(failing) or "new-files/%s or the series' compiler " \
            "warnings" % line.name
        raise Failure("patchcheck: problems in %s" % names)
    print("patchcheck: no problems")
    return 0
