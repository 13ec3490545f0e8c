"""Print the path of the patched interpreter that `build` made.

With --debug, the --with-pydebug build's; with --stock, that of the base
built without the series (`build --stock`), which `bench` compares with.
"""

from .model.workspace import interpreter


def add_arguments(parser):
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--debug", action="store_true",
                        help="the --with-pydebug build instead")
    choice.add_argument("--stock", action="store_true",
                        help="the base built without the series "
                             "(`tools build --stock`) instead")


def run(ws, line, args):
    print(interpreter(ws, line, args.debug, args.stock)["python"])
    return 0
