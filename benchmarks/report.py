"""The table and the plots of a results document of compare.py.

format_table gives table.txt (and, with --publish, README.md's table)
from the document alone (what results.json holds); plot() draws
memory.png and speed.png with matplotlib.
"""

import sys

from .compare import WARM_CALLS, human_size, scenarios

SHORT_TITLES = {name: title.replace(" to a file", " -> file")
                .replace(" from a file", " <- file")
                for name, title, _ in scenarios.SCENARIOS}


def failure_text(cell):
    if cell.get("status") == "n/a":
        return "n/a (%s)" % (cell.get("short") or "unsupported")
    return "FAILED (%s)" % (cell.get("short") or "error")


def format_seconds(seconds):
    if seconds >= 1:
        return "%.2f s" % seconds
    if seconds >= 1e-3:
        return "%.1f ms" % (seconds * 1e3)
    return "%.0f us" % (seconds * 1e6)


def cell_text(kind, row, cell, patched):
    """A cell of a section (memory, throughput, instructions or wall);
    " !" marks a patched cell that misses its target."""
    if cell["status"] != "ok":
        return failure_text(cell)
    if kind == "memory":
        miss = patched and cell["extra_ratio"] > row["target_max"]
        return "%+.2fx" % cell["extra_ratio"] + (" !" if miss else "")
    if kind == "throughput" and row["name"] in scenarios.OUT_OF_BAND:
        text = format_seconds(cell["best_seconds"])
        if cell.get("time_ratio") is not None:
            text += " (x%.1f)" % cell["time_ratio"]
        return text
    if kind == "throughput":
        return "%.0f" % cell["mb_per_s"]
    if kind == "instructions":
        text = "%.1fk" % (cell["per_call"] / 1e3)
    else:
        text = format_seconds(cell["time"])
    if cell.get("ratio") is not None:
        text += " %.3fx" % cell["ratio"]
        if cell["ratio"] > cell["target"]:
            text += " !"
    return text


def target_text(kind, row):
    if kind == "memory" and row["name"] in scenarios.OUT_OF_BAND:
        return "< %.2fx" % scenarios.SLACK
    if kind == "memory":
        return "<= %.2fx (limit %gx)" % (row["target_max"], row["limit"])
    return "" if kind == "throughput" else "C <= 1.00x, Py <= 1.02x"


def small_title(speed):
    if speed["method"] != "instructions":
        return ("small objects: pyperf wall clock, median time per call, "
                "and the patched columns' ratio to their baseline (--wall, "
                "or no valgrind)")
    calls = speed["calls"]
    if isinstance(calls, dict):   # int in results before per-impl counts
        calls = "%d for C, %d for Py" % (calls["c"], calls["py"])
    return ("small objects: instructions per call (callgrind, "
            "PYTHONHASHSEED=0, (count of %d + N calls - count of %d) "
            "/ N, N = %s), and the patched columns' ratio to their "
            "baseline" % (WARM_CALLS, WARM_CALLS, calls))


def all_rows(doc):
    """The memory scenarios and the small-object rows of a document."""
    return ((doc.get("memory") or {}).get("scenarios", []) +
            (doc.get("speed") or {}).get("rows", []))


def failures(doc):
    """Each failed measurement of a document: "ROW on COLUMN: reason"."""
    return ["%s on %s: %s" % (row["name"], key, cell["reason"])
            for row in all_rows(doc)
            for key, cell in row["cells"].items()
            if cell["status"] == "failed"]


def format_table(doc):
    """The text table of a results document."""
    columns = doc["columns"]
    memory, speed = doc.get("memory"), doc.get("speed")
    sections = []
    if memory:
        sections.append(("memory", memory["scenarios"], "extra peak RSS "
                         "over the payload, in payload sizes (payload %s)"
                         % human_size(memory["size"])))
        sections.append(("throughput", memory["scenarios"], "throughput in "
                         "MB/s (10^6 bytes), warm best of %d runs; "
                         "out-of-band: best time, and its ratio to the time "
                         "at %s" % (memory["repeats"], human_size(
                             scenarios.OOB_REFERENCE_SIZE))))
    if speed:
        sections.append((speed["method"], speed["rows"], small_title(speed)))
    rows = []
    for kind, section, title in sections:
        rows.append(title)
        for row in section:
            cells = [cell_text(kind, row, row["cells"][c["key"]],
                               c["role"] == "patched") for c in columns]
            rows.append([SHORT_TITLES.get(row["name"], row["name"]), *cells,
                         target_text(kind, row)])
    rows.append(["protocol"] + [str(c["protocol"] or "-") for c in columns] +
                [""])
    header = ["scenario"] + [c["label"] for c in columns] + ["target"]
    widths = [max(len(r[i]) for r in [header] + rows if isinstance(r, list))
              for i in range(len(header))]
    lines = []
    for cells in [header, ["-" * w for w in widths]] + rows:
        if isinstance(cells, str):
            lines.append(cells + ":")
            continue
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])]
        lines.append("  ".join([cells[0].ljust(widths[0])] + middle +
                               [cells[-1]]).rstrip())
    return "\n".join(lines + footnotes(doc))


def footnotes(doc):
    """The legend, the baselines, then each reason for n/a or FAILED."""
    labels = {c["key"]: c["label"] for c in doc["columns"]}
    lines = ['"!": a patched column misses the target of the issue.']
    for column in doc["columns"]:
        bases = ", ".join(labels[k] for k in column["baselines"])
        if len(column["baselines"]) > 1:
            bases = "min(%s)" % bases
        if column["baselines"]:
            lines.append("%s: ratio to %s" % (column["label"], bases))
    reasons = {}
    for row in all_rows(doc):
        for key, cell in row["cells"].items():
            if cell.get("status") in ("n/a", "failed"):
                where = reasons.setdefault(
                    (failure_text(cell), cell.get("reason", "")), [])
                if labels[key] not in where:
                    where.append(labels[key])
    for (text, reason), where in reasons.items():
        lines.append("%s in %s: %s" % (text, ", ".join(where), reason))
    return lines


# -- plots --------------------------------------------------------------------

def plot(doc, directory):
    """memory.png and speed.png; a sentence saying why not, or None."""
    for stale in ("memory.png", "speed.png"):
        (directory / stale).unlink(missing_ok=True)
    try:
        import matplotlib
    except ImportError:
        return ("no plots: matplotlib is missing from %s; install the dev "
                "requirements: python3 -m pip install -r requirements/dev.txt"
                % sys.executable)
    matplotlib.use("Agg")
    from matplotlib import pyplot

    memory, speed = doc.get("memory"), doc.get("speed")
    if memory:
        grouped_bars(pyplot, doc["columns"], memory["scenarios"],
                     "extra_ratio", directory / "memory.png",
                     "extra peak RSS / payload (payload %s)"
                     % human_size(memory["size"]), marks="target_max")
    if speed:
        counted = speed["method"] == "instructions"
        grouped_bars(pyplot, doc["columns"], speed["rows"],
                     "per_call" if counted else "time",
                     directory / "speed.png",
                     "small objects: %s per call, log scale"
                     % ("instructions" if counted else "seconds"))


def grouped_bars(pyplot, columns, rows, field, path, title, marks=None):
    """Bars of FIELD, a group a row; dashes at each row's MARKS field."""
    groups = [SHORT_TITLES.get(r["name"], r["name"]) for r in rows]
    figure, axes = pyplot.subplots(figsize=(max(8, 1.3 * len(groups)), 5))
    width = 0.8 / max(len(columns), 1)
    for index, column in enumerate(columns):
        xs = [g + (index - (len(columns) - 1) / 2.0) * width
              for g in range(len(groups))]
        heights = [row["cells"][column["key"]].get(field) or 0
                   for row in rows]
        axes.bar(xs, heights, width, label=column["label"])
    if marks:
        for g, row in enumerate(rows):
            axes.hlines(row[marks], g - 0.45, g + 0.45, colors="black",
                        linestyles="dashed", linewidth=1)
        title += " (dashes: target)"
    else:
        # C and Python picklers differ by 50x: only a log scale shows both.
        axes.set_yscale("log")
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=25, ha="right", fontsize=8)
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    pyplot.close(figure)
