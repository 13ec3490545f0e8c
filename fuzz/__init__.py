"""A fuzz check of the unpicklers of a patched interpreter.

Everything here runs inside the interpreter under test (3.7 through
3.13, standard library only): ``python -m fuzz`` runs a campaign,
``python -m fuzz.driver`` is its worker.  `python3 -m tools fuzz` finds
the interpreter and runs the campaign with it.
"""
