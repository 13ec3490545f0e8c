"""Print the path of the patched interpreter that `build` made.

With --debug, the --with-pydebug build's; with --stock, that of the base
built without the series (`build --stock`), which `bench` compares with.
"""

from pathlib import Path

from .errors import UsageError


def add_arguments(parser):
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--debug", action="store_true",
                        help="the --with-pydebug build instead")
    choice.add_argument("--stock", action="store_true",
                        help="the base built without the series "
                             "(`tools build --stock`) instead")


def interpreter(ws, line, debug=False, stock=False):
    """The record of the built interpreter; UsageError when there is none."""
    variant = "debug" if debug else "stock" if stock else None
    record = ws.read_interpreter(line, variant=variant)
    build = "python3 -m tools build%s%s" % (
        "" if line.name == "3.7" else " --base " + line.name,
        " --" + variant if variant else "")
    what = {None: "patched ", "debug": "patched debug ",
            "stock": "stock (same build) "}[variant]
    if record is None:
        raise UsageError("no %sCPython %s interpreter yet: run `%s`"
                         % (what, line.name, build))
    if not Path(record["python"]).exists():
        raise UsageError("the %sinterpreter %s is gone: run `%s`"
                         % (what, record["python"], build))
    return record


def run(ws, line, args):
    print(interpreter(ws, line, args.debug, args.stock)["python"])
    return 0
