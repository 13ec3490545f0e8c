"""Apply the series to the base in a git work tree under build/<line>/src.

The work tree gets one commit for the base and one commit per patch, with
the patch's author, date and message, so that `git log`, `git show` and
`git rebase -i` work on the series as usual.  Edit there, commit (amend or
fixup the patch's commit), then run `python3 -m tools refresh` to write the
series back to patches/.

Re-applying only rewrites the files whose content changes, so an
incremental build after a one-line patch edit recompiles one file.
"""

from .model import basestore
from .model.tree import apply_series, print_result


def add_arguments(parser):
    parser.add_argument("--kind", choices=basestore.KINDS,
                        help="apply to this base (default: the source base "
                             "when imported, else the installed one)")
    parser.add_argument("--upto", type=int, metavar="N",
                        help="apply only the first N patches")
    parser.add_argument("--force", action="store_true",
                        help="discard edits and commits in build/<line>/src "
                             "that were not refreshed")


def run(ws, line, args):
    result = apply_series(ws, line, kind=args.kind, upto=args.upto,
                          force=args.force)
    print_result(result)
    return 0
