"""The standard library's pickle, under the name of its backport.

On Python < 3.8, libraries that can use pickle protocol 5 (numpy's
ndarray.__reduce_ex__, cloudpickle, distributed, ...) import the
``pickle5`` backport from PyPI.  In this patched interpreter the standard
``pickle`` module implements protocol 5 itself, so ``pickle5`` *is* that
module: PickleBuffer, Pickler and the rest are the same objects, and
numpy's out-of-band buffers reach ``pickle.dumps(..., buffer_callback=...)``
without a copy.
"""

import sys

import pickle

sys.modules[__name__] = pickle
