"""Command-line entry point: ``python3 -m tools <verb> [options]``."""

import argparse
import importlib
import sys

from .model.errors import ToolError
from .model.workspace import DEFAULT_LINE, LINES, Workspace

VERBS = ["base", "apply", "refresh", "build", "which", "test", "check",
         "patchcheck", "upstream", "bench", "export", "fuzz"]


class Parser(argparse.ArgumentParser):
    """Report argument mistakes on one line, with exit status 2."""

    def error(self, message):
        sys.stderr.write("%s: error: %s (see --help)\n" % (self.prog, message))
        sys.exit(2)


def build_parser():
    parser = Parser(prog="python3 -m tools",
                    description="Carry, build, test and upstream the "
                                "zero-copy pickling patch series.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB",
                                  parser_class=Parser, required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base", dest="line", default=DEFAULT_LINE,
                        choices=sorted(LINES), metavar="LINE",
                        help="release line whose series to use: %s (default "
                             "%s)" % (", ".join(sorted(LINES)), DEFAULT_LINE))
    common.add_argument("--workspace", metavar="DIR",
                        help="workspace root (default: this checkout)")
    common.add_argument("--cache-dir", metavar="DIR",
                        help="where imported bases live (default: "
                             "$ZEROCOPY_PICKLE_CACHE or the XDG cache)")
    for name in VERBS:
        module = importlib.import_module("." + name, __package__)
        sub = verbs.add_parser(
            name, help=module.__doc__.strip().splitlines()[0],
            description=module.__doc__, parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    ws = Workspace(args.workspace, args.cache_dir)
    try:
        return args.run(ws, LINES[args.line], args) or 0
    except ToolError as exc:
        sys.stderr.write("error: %s\n" % exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (| head): nothing to report.
        sys.stderr.close()
        return 1
