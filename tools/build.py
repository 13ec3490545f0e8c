"""Build the patched interpreter under build/<line>/.

The mode is chosen from the imported bases and reported:

  full     configure + make of the patched source base, installed into
           build/<line>/prefix (--debug: a --with-pydebug build in
           build/<line>/debug, for refleak hunting);
  overlay  a copy of an installed interpreter of the line with the patched
           Lib/ files and the series' C files compiled against its headers
           (without a source base, pickle is the patched pure Python one).
  --stock  the source base without the series (but its toolchain fixes),
           in build/<line>/stock/: the baseline of `tools bench`.

Both modes add a `pickle5` alias module to the standard library and, best
effort, numpy from PyPI for the end-to-end tests.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .model import basestore, debian, providers
from .model.make import (PIP_TARGET, applied_paths, configure_and_make,
                         count_warnings, install_paths, run_logged)
from .model.tree import (apply_downstream, apply_series, ensure_applied,
                         print_result)
from .model.gitutil import run as run_command
from .model.workspace import base_option
from .model.errors import Failure, UsageError

# Extras installed into the patched interpreter for the end-to-end tests.
EXTRAS = {"3.7": ["numpy==1.21.6"], "3.13": ["numpy==2.2.6"]}
# Lib/ files of the series the overlay cannot install: they test core
# changes (memoryview.toreadonly, the bytearray constructor, in C) that an
# installed interpreter lacks.
OVERLAY_SKIP = {"Lib/test/test_memoryview.py", "Lib/test/test_bytes.py"}


def add_arguments(parser):
    parser.add_argument("--mode", choices=("auto", "full", "overlay"),
                        default="auto",
                        help="full build, overlay, or choose (default)")
    parser.add_argument("--debug", action="store_true",
                        help="full mode: a --with-pydebug build for refleaks")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="parallel make jobs (default: the core count)")
    parser.add_argument("--no-extras", action="store_true",
                        help="do not install numpy into the interpreter "
                             "(the end-to-end numpy tests then skip)")
    parser.add_argument("--stock", action="store_true",
                        help="build the source base without the series "
                             "(but its toolchain fixes) in build/<line>/"
                             "stock: the like-for-like baseline of `tools "
                             "bench`")


def run(ws, line, args):
    debug, stock = args.debug, args.stock
    if stock and (debug or args.mode == "overlay"):
        raise UsageError("--stock is a full build of the source base without "
                         "the series: leave out %s"
                         % ("--debug" if debug else "--mode overlay"))
    mode = choose_mode(ws, line, "full" if stock else args.mode, debug, stock)
    jobs = args.jobs or os.cpu_count() or 1
    logs = ws.build_dir(line) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if mode == "full":
        info = build_source(ws, line, debug, stock, jobs, logs)
    else:
        info = build_overlay(ws, line, logs)
    if not debug and not stock:
        info["notes"] = info.get("notes", []) + install_extras(
            ws, line, info, logs, numpy=not args.no_extras)
    record_path = ws.interpreter_record(
        line, debug, variant="stock" if stock else None)
    record_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print("built: %s" % info["python"])
    if stock:
        fixes = info["toolchain_fixes"]
        print("  stock: %s without the series%s" % (
            info["base"], "" if not fixes else
            ", but for its toolchain fix(es) %s" % ", ".join(fixes)))
        print("  compare: python3 -m tools bench%s" % base_option(line))
        return 0
    print("  mode: %s%s" % (info["mode"], " (debug)" if debug else ""))
    print("  base: %s" % info["base"])
    print("  C accelerator: %s" % (
        "patched _pickle (pickle.Pickler is _pickle.Pickler)"
        if info["c_accelerator"] else
        "none; pickle uses the patched pure-Python Pickler and Unpickler "
        "(import a source base for the C version: python3 -m tools base "
        "import PATH)"))
    for note in info.get("notes", []):
        print("  note: " + note)
    return 0


def choose_mode(ws, line, mode, debug, stock):
    source = basestore.load(ws, line, "source")
    if source is None and line.debian is not None and mode != "overlay":
        # A current line's source comes from Debian's registry, which every
        # machine of ours reaches: no manual step before the first build.
        print("no source base for %s: importing Debian's %s source package"
              % (line.name, line.debian.package))
        source = debian.import_source(ws, line)
        print("imported: " + source.describe())
    if mode == "auto":
        mode = "full" if source is not None else "overlay"
    if mode == "full" and source is None:
        raise UsageError("%s needs a source base: run `python3 -m tools base "
                         "import PATH` (or `base download`)"
                         % ("the stock build (--stock)" if stock
                            else "a full build"))
    if debug and mode != "full":
        raise UsageError("--debug needs a full build from a source base")
    return mode


def build_source(ws, line, debug, stock, jobs, logs):
    """configure, make and install the patched or the stock work tree (a
    debug build runs from OBJ): the builds differ only by their sources and
    --with-pydebug.  Returns the interpreter's record."""
    build = ws.build_dir(line)
    if stock:
        build = build / "stock"
        applied = apply_series(ws, line, kind="source",
                               upto=line.toolchain_fixes, src=build / "src")
        print_result(applied)
    else:
        applied = ensure_applied(ws, line)
    obj = build / ("debug" if debug else "obj")
    log = logs / ("%s.log" % ("stock" if stock else obj.name))
    prefix = build / "prefix"
    src = applied["src"]
    options = ["--prefix=%s" % prefix]
    if debug:
        options.append("--with-pydebug")
    configure_and_make(src, obj, options, applied["head"], jobs, log, print)
    warnings = count_warnings(log, applied_paths(src))
    if debug:
        python = obj / "python"
    else:
        print("installing into %s" % prefix)
        run_logged(["make", "install"], obj, log, "make install")
        python = prefix / "bin" / ("python" + line.name)
    check_interpreter(python)
    base = applied["base"]
    info = {"mode": "full", "debug": debug, "python": str(python),
            "c_accelerator": True, "base": base.describe(),
            "base_version": base.version, "pickle_base_version": base.version,
            "head": applied["head"],
            "warnings_in_series_files": warnings, "log": str(log)}
    if stock:
        info.update(stock=True, toolchain_fixes=list(applied["patches"]))
    return info


def check_interpreter(python):
    proc = run_command([str(python), "-c", "import pickle"], check=False)
    if proc.returncode != 0:
        raise Failure("the built interpreter %s does not import pickle: %s"
                      % (python, (proc.stderr.strip().splitlines()
                                  or ["?"])[-1]))


def build_overlay(ws, line, logs):
    installed = basestore.load(ws, line, "installed")
    if installed is None:
        print("no installed base recorded: looking for an installed CPython "
              "%s" % line.name)
        installed = providers.from_installed(ws, line)
        print("imported: " + installed.describe())
    facts = installed.record
    prefix_src = Path(facts["prefix"])
    if not (prefix_src / "bin").is_dir():
        raise UsageError("the installed interpreter at %s is gone: run "
                         "`python3 -m tools base installed`" % prefix_src)
    source = basestore.load(ws, line, "source")
    with_c = source is not None
    # The source base when there is one, else the installed one.
    applied = ensure_applied(ws, line)
    src = applied["src"]
    overlay = ws.build_dir(line) / "overlay"
    state_path = ws.build_dir(line) / "overlay.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("prefix") != str(prefix_src) or not overlay.exists():
        if overlay.exists():
            shutil.rmtree(overlay)
        print("copying %s to %s" % (prefix_src, overlay))
        shutil.copytree(prefix_src, overlay, symlinks=True)
        state = {"prefix": str(prefix_src), "installed": []}
    # Put back what an earlier overlay build replaced, then install anew.
    for rel in state.get("installed", []):
        if (prefix_src / rel).exists():
            shutil.copy2(prefix_src / rel, overlay / rel)
        else:
            (overlay / rel).unlink(missing_ok=True)
    stdlib = overlay / Path(facts["stdlib"]).relative_to(prefix_src)
    dynload = overlay / Path(facts["platstdlib"]).relative_to(prefix_src) / \
        "lib-dynload"
    lib_files = [p for p in applied_paths(src)
                 if p.startswith("Lib/") and p not in OVERLAY_SKIP]
    targets = [stdlib / rel[len("Lib/"):] for rel in lib_files]
    for rel, target in zip(lib_files, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
        if target.suffix == ".py":
            for stale in target.parent.glob("__pycache__/%s.*.pyc"
                                            % target.stem):
                stale.unlink()
    overlay_dir = ws.overlay_dir(line)
    apply_downstream(ws, line, stdlib)
    python = overlay / "bin" / ("python" + line.name)
    cfg = compiler_config(python)
    log = logs / "overlay.log"
    log.write_text("")
    notes = []
    module = dynload / ("_picklebuffer" + cfg["EXT_SUFFIX"])
    # The series' own C type, from the copies of the files it adds (their
    # headers, and not the base's, are the include directory).
    added = ws.new_files_dir(line)
    compile_extension(cfg, [added / "Objects" / "picklebufobject.c",
                            overlay_dir / "_picklebuffermodule.c"],
                      [added / "Include"], module, log)
    stock_pickle = dynload / ("_pickle" + cfg["EXT_SUFFIX"])
    if with_c:
        compile_extension(cfg, [src / "Modules" / "_pickle.c"],
                          [added / "Include", src / "Modules"], stock_pickle,
                          log, force_include=overlay_dir / "picklebuffer_api.h")
    elif stock_pickle.exists():
        # The stock accelerator knows nothing of protocol 5: without it,
        # pickle falls back to the patched Python classes everywhere.
        stock_pickle.unlink()
        notes.append("no C sources in the base: removed the stock _pickle")
    warnings = count_warnings(log, ["Objects/picklebufobject.c",
                                    "Modules/_pickle.c",
                                    "_picklebuffermodule.c"])
    subprocess.run([str(python), "-m", "compileall", "-q"] +
                   [str(target) for target in targets],
                   stdout=subprocess.DEVNULL)
    # Put back at the next build, or removed if the prefix has no such file.
    state["installed"] = sorted({str(p.relative_to(overlay))
                                 for p in targets + [module, stock_pickle]})
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    check_interpreter(python)
    # The pickle modules come from the source base when there is one.
    pickle_version = source.version if with_c else facts["version"]
    if pickle_version != facts["version"]:
        notes.append("the pickle modules come from patched %s, the rest of "
                     "the interpreter is %s" % (pickle_version,
                                                facts["version"]))
    return {"mode": "overlay", "debug": False, "python": str(python),
            "c_accelerator": with_c,
            "base": (source.describe() + " on " if with_c else "") +
            installed.describe(), "base_version": facts["version"],
            "pickle_base_version": pickle_version, "head": applied["head"],
            "warnings_in_series_files": warnings, "log": str(log),
            "notes": notes}


def compiler_config(python):
    script = ("import json, sysconfig; print(json.dumps({k: sysconfig."
              "get_config_var(k) or '' for k in ('CC', 'CFLAGS', 'CCSHARED', "
              "'LDSHARED', 'EXT_SUFFIX', 'INCLUDEPY')}))")
    proc = run_command([str(python), "-c", script], check=False)
    if proc.returncode != 0:
        raise Failure("cannot read the compiler settings of %s" % python)
    return json.loads(proc.stdout)


def compile_extension(cfg, sources, includes, target, log,
                      force_include=None):
    args = cfg["CC"].split() + cfg["CFLAGS"].split() + \
        cfg["CCSHARED"].split() + ["-I" + str(i) for i in includes] + \
        ["-I" + cfg["INCLUDEPY"]]
    if force_include:
        args += ["-include", str(force_include)]
    objects = [target.parent / (target.name + "." + source.stem + ".o")
               for source in sources]
    for source, obj in zip(sources, objects):
        run_logged(args + ["-c", str(source), "-o", str(obj)], target.parent,
                   log, "compiling %s" % source.name)
    run_logged(cfg["LDSHARED"].split() + [str(o) for o in objects] +
               ["-o", str(target)], target.parent, log,
               "linking %s" % target.name)
    for obj in objects:
        obj.unlink()


def install_extras(ws, line, info, logs, numpy=True):
    """The pickle5 alias, and numpy (best effort: needs PyPI).  The alias
    and its dist-info go into the standard library, which every venv made
    from the interpreter sees, so that pip does not install the backport
    over it."""
    python = Path(info["python"])
    stdlib, target = install_paths(python)
    for item in ws.stdlib_extras_dir(line).glob("*"):
        # An earlier build put the alias into site-packages.
        for dest in (target / item.name, stdlib / item.name):
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, stdlib / item.name)
    wanted = EXTRAS.get(line.name, []) if numpy else []
    missing = []
    for req in wanted:
        probe = [str(python), "-c", "import " + req.split("==")[0]]
        if run_command(probe, check=False).returncode != 0:
            missing.append(req)
    if not missing:
        return []
    print("installing %s into the patched interpreter (from PyPI)"
          % ", ".join(missing))
    log = logs / "extras.log"
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "--no-input", "--retries", "1",
             "--timeout", "20", "--only-binary=:all:", "--no-deps",
             "--ignore-requires-python",
             "--target", str(target)] + PIP_TARGET[line.name] + missing,
            stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode == 0:
        return []
    return ["could not install %s (offline? see %s): the numpy tests will be "
            "skipped" % (", ".join(missing), log)]
