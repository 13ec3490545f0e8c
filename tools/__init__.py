"""Workspace tools for the zero-copy pickling patch series.

Run from the repository root as ``python3 -m tools <verb>``; each verb is
one module of this package.  The tools use only the standard library, so
that the main command works on a fresh machine without installing anything.
"""
