"""Print the path of the patched interpreter that `build` made."""

from pathlib import Path

from .errors import UsageError


def add_arguments(parser):
    parser.add_argument("--debug", action="store_true",
                        help="the --with-pydebug build instead")


def interpreter(ws, line, debug=False):
    """The record of the built interpreter; UsageError when there is none."""
    record = ws.read_interpreter(line, debug=debug)
    build = "python3 -m tools build%s%s" % (
        "" if line.name == "3.7" else " --base " + line.name,
        " --debug" if debug else "")
    if record is None:
        raise UsageError("no patched %sCPython %s interpreter yet: run `%s`"
                         % ("debug " if debug else "", line.name, build))
    if not Path(record["python"]).exists():
        raise UsageError("the patched interpreter %s is gone: run `%s`"
                         % (record["python"], build))
    return record


def run(ws, line, args):
    print(interpreter(ws, line, args.debug)["python"])
    return 0
