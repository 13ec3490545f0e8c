"""Workspace tools for the zero-copy pickling patch series: ``python3 -m
tools <verb>``, one module per verb.  They use only the standard library,
so that they work on a fresh machine without installing anything."""
