"""PEP 7 basics for the C files the workspace keeps (pre-commit hook).

  python3 -m tools.cstyle FILE...

Spaces, not tabs; lines of at most 79 characters; no trailing whitespace;
one final newline; no // comments; a space after `if`, `for`, `while` and
`switch`; `else` on the line after the closing brace; function names and
braces in column 1.  Prints path:line: problem and exits 1 when there is
any.
"""

import re
import sys

MAX_LINE = 79
KEYWORD_PAREN = re.compile(r"\b(if|for|while|switch|return)\(")
CUDDLED_ELSE = re.compile(r"\}\s*else\b")
# A definition's header line with the name in column 1: `name(`.
NAME_IN_COLUMN_1 = re.compile(r"^\**[A-Za-z_]\w*\s*\(")
STRINGS = re.compile(r'"(?:\\.|[^"\\])*"' + r"|'(?:\\.|[^'\\])*'")
# A closed /* comment, a // comment (kept as "//"), an open /* comment.
COMMENT = re.compile(r"/\*.*?\*/|(//).*|(/\*).*")


def code_part(line, in_comment):
    """LINE without string literals and comments; and whether a /* comment
    is still open at its end."""
    code = ("/*" if in_comment else "") + STRINGS.sub('""', line)
    comments = list(COMMENT.finditer(code))
    return COMMENT.sub(r"\1", code), bool(comments and comments[-1][2])


def check_text(path, text):
    problems = []

    def problem(number, message):
        problems.append("%s:%d: %s" % (path, number, message))

    lines = text.split("\n")
    if text and not text.endswith("\n"):
        problem(len(lines), "no newline at the end of the file")
    elif text.endswith("\n\n"):
        problem(len(lines) - 1, "blank line(s) at the end of the file")
    if text.endswith("\n"):
        lines = lines[:-1]
    in_comment = in_macro = False
    for number, line in enumerate(lines, 1):
        if "\t" in line:
            problem(number, "tab character (PEP 7: 4 spaces, no tabs)")
        if line != line.rstrip():
            problem(number, "trailing whitespace")
        if len(line) > MAX_LINE:
            problem(number, "line of %d characters (PEP 7: at most %d)"
                    % (len(line), MAX_LINE))
        code, in_comment = code_part(line, in_comment)
        was_macro = in_macro
        in_macro = line.rstrip().endswith("\\") and (
            was_macro or line.lstrip().startswith("#"))
        if was_macro or code.lstrip().startswith("#"):
            continue
        if "//" in code:
            problem(number, "C++ comment (PEP 7: /* C comments */ only)")
        match = KEYWORD_PAREN.search(code)
        if match:
            problem(number, "no space between '%s' and '('" % match.group(1))
        if CUDDLED_ELSE.search(code):
            problem(number, "'else' belongs on the line after '}' (PEP 7)")
        if line.rstrip() == "{":
            header = definition_header(lines, number - 1)
            if header is not None and not NAME_IN_COLUMN_1.match(
                    lines[header]):
                problem(header + 1, "function name not in column 1 (PEP 7: "
                                    "return type on the line above)")
        elif (line[:1].isalpha() or line[:1] == "_") and \
                code.rstrip().endswith(") {") and "=" not in code:
            problem(number, "the opening brace of a function goes in column 1 "
                            "on its own line (PEP 7)")
    return problems


def definition_header(lines, brace_index):
    """Index of the line of a definition's header that holds `name(`."""
    header = None
    index = brace_index - 1
    while index >= 0 and lines[index].strip() and \
            not lines[index].rstrip().endswith((";", "}", "*/")):
        if "(" in lines[index]:
            header = index
        index -= 1
    return header


def main(argv=None):
    paths = sys.argv[1:] if argv is None else argv
    problems = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append("%s: cannot read: %s" % (path, exc))
            continue
        problems.extend(check_text(path, text))
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
