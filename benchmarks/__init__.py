"""The measurements of `python3 -m tools bench`.

pickle_scenarios.py and workloads.py run inside every interpreter compared
(3.7 through 3.13, standard library only), by path.  compare.py, which
runs them, and report.py, which makes the table and the plots of their
results, run in the interpreter of the tools; `tools bench` is the verb.
"""
