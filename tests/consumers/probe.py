"""Print, as JSON, which pickle the consumers in this environment use.

Run inside a consumers venv; tests/test_consumers.py reads the output.
"""

import json
import sys


def main():
    import pickle

    import cloudpickle
    from cloudpickle import compat

    try:
        import _pickle
    except ImportError:
        _pickle = None
    try:
        import pickle5
    except ImportError:
        pickle5 = None
    report = {
        "python": sys.version.split()[0],
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "pickle_highest_protocol": pickle.HIGHEST_PROTOCOL,
        "pickle5": getattr(pickle5, "__file__", None),
        "pickle5_is_pickle": pickle5 is pickle,
        "pickle5_highest_protocol": getattr(pickle5, "HIGHEST_PROTOCOL", None),
        "has_c_pickle": _pickle is not None,
        "cloudpickle": cloudpickle.__version__,
        "cloudpickle_compat_pickle": compat.pickle.__name__,
        "cloudpickle_default_protocol": cloudpickle.DEFAULT_PROTOCOL,
        "cloudpickle_pickler_mro": ["%s.%s" % (c.__module__, c.__qualname__)
                                    for c in cloudpickle.Pickler.__mro__],
        "cloudpickle_on_c_pickler": (
            _pickle is not None
            and issubclass(cloudpickle.Pickler, _pickle.Pickler)),
    }
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
