"""What the workers of dask_spill.py run, importable by name.

The functions are pickled by reference (plain pickle, no cloudpickle), so
that the scenario also runs where cloudpickle cannot (a pickle without the
C Pickler); dask_spill.py --by-value makes the payload's class a class of
its own __main__, which only cloudpickle can send.
"""

import os
import resource
import time

MIB = 1 << 20


class Payload:
    """A user-defined object holding a large array, as a user would write."""

    def __init__(self, nbytes):
        import numpy
        # np.full writes every page: RSS holds the whole payload at once.
        self.array = numpy.full(nbytes, 7, dtype=numpy.uint8)
        self.label = "payload of %d bytes" % nbytes

    def __sizeof__(self):
        # What dask's sizeof (and so the SpillBuffer's weight) reads.
        return object.__sizeof__(self) + self.array.nbytes


def make_payload(cls, nbytes):
    return cls(nbytes)


def checksum(payload):
    """A small result that reads the array where it lies (no copy)."""
    array = payload.array
    return [payload.label, int(array.nbytes), int(array[::4096].sum()),
            int(array[-1])]


def memory():
    """This worker's current and peak RSS, in bytes."""
    import psutil
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss": psutil.Process().memory_info().rss,
            "peak": peak_kib * 1024}


def listening_addresses():
    import psutil
    return sorted({c.laddr[0] for c in psutil.Process().connections("inet")
                   if c.status == psutil.CONN_LISTEN})


def pickle_path(key, dask_worker):
    """How this worker's distributed serializes the object under KEY."""
    import pickle

    import numpy
    from distributed.protocol import pickle as dpickle
    from distributed.protocol import serialize

    try:
        import pickle5
    except ImportError:
        pickle5 = None
    payload = dask_worker.data[key]
    buffers = []
    dpickle.dumps(payload, buffer_callback=buffers.append)
    header, frames = serialize(payload)
    array = payload.array
    sharing = [f for f in frames
               if numpy.shares_memory(numpy.frombuffer(f, dtype=numpy.uint8),
                                      array)]
    return {
        "payload_class": "%s.%s" % (type(payload).__module__,
                                    type(payload).__qualname__),
        "pickle5_is_pickle": pickle5 is pickle,
        "highest_protocol": pickle.HIGHEST_PROTOCOL,
        "pickle5_file": getattr(pickle5, "__file__", None),
        "distributed_protocol": dpickle.HIGHEST_PROTOCOL,
        "pickler": "%s.%s" % (pickle.Pickler.__module__,
                              pickle.Pickler.__qualname__),
        "buffers": [memoryview(b).nbytes for b in buffers],
        "serializer": header.get("serializer"),
        "frames": [memoryview(f).nbytes for f in frames],
        "frames_sharing_the_array": len(sharing),
        "bytes_sharing_the_array": sum(memoryview(f).nbytes for f in sharing),
    }


def spill(key, dask_worker):
    """Evict KEY to disk the way Worker.memory_monitor does in 2022.2."""
    import gc
    data = dask_worker.data
    evicted = []
    while key in data.fast:
        k, _, _ = data.fast.evict()
        evicted.append(k)
    gc.collect()
    assert key in data.slow, "%r not on disk after eviction" % key
    directory = data.slow.d.directory
    files = {name: os.path.getsize(os.path.join(directory, name))
             for name in os.listdir(directory)}
    return {"type": type(data).__name__, "evicted": evicted,
            "in_memory": key in data.fast, "on_disk": key in data.slow,
            "directory": directory, "files": files,
            "spilled_total": getattr(data, "spilled_total", None),
            "memory": memory()}


def read_back(key, dask_worker):
    data = dask_worker.data
    started = time.perf_counter()
    result = checksum(data[key])
    return {"checksum": result, "in_memory": key in data.fast,
            "on_disk": key in data.slow,
            "seconds": time.perf_counter() - started, "memory": memory()}
