"""A large user object travels between two dask worker processes and to disk.

Run inside the consumers venv of a patched 3.7 (tests/test_consumers.py
does that):

    python dask_spill.py --size-mib 512 --out result.json

A LocalCluster of two worker processes, bound to 127.0.0.1 only, without
dashboards.  A `Payload` (dask_payload.Payload, or with --by-value a class
of this script, which only cloudpickle can send) holding a numpy array is
made on worker A; a task on worker B
takes it as its argument, so distributed moves it from A to B through its
pickle path at protocol 5, with the array as an out-of-band buffer.  Then
worker B spills it to disk through its SpillBuffer, the way its memory
monitor does, and reads it back, and a lambda is submitted (cloudpickle
again; --no-lambda leaves it out).  Peak RSS of both workers is taken
before and after each step.  Every check raises AssertionError with what it saw;
the measurements go to --out (JSON) either way, and the process exits 1
when a check failed.
"""

import argparse
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dask_payload  # noqa: E402
from dask_payload import (MIB, checksum, listening_addresses,  # noqa: E402
                          make_payload, memory, pickle_path, read_back, spill)


class MainPayload(dask_payload.Payload):
    """The same payload, from a class only cloudpickle can send (by value)."""


def scenario(size, mode, by_value, with_lambda, results):
    import dask
    import distributed
    import numpy
    from distributed import Client, LocalCluster

    results["versions"] = {"python": sys.version.split()[0],
                           "numpy": numpy.__version__,
                           "dask": dask.__version__,
                           "distributed": distributed.__version__}
    # The memory monitor must not spill, pause or kill on its own: the
    # scenario spills by itself, and RSS must only move with what it does.
    config = {"distributed.worker.memory.target": 0.9,
              "distributed.worker.memory.spill": False,
              "distributed.worker.memory.pause": False,
              "distributed.worker.memory.terminate": False}
    limit = max(4 * size, 2 << 30)
    # Dashboards off.  The scheduler and each worker still serve a few
    # HTTP routes (health, metrics) on a port of their own, bound by
    # default to every interface (8787 for the scheduler even with
    # dashboard_address=None): bind those to loopback too.
    with dask.config.set(config), LocalCluster(
            n_workers=0, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None,
            scheduler_kwargs={"dashboard": False,
                              "dashboard_address": "127.0.0.1:0"},
            memory_limit=limit) as cluster, Client(cluster) as client:
        started = time.perf_counter()
        cluster.new_spec["options"] = dict(
            cluster.new_spec["options"], dashboard=False,
            dashboard_address="127.0.0.1:0")
        cluster.scale(2)
        client.wait_for_workers(2)
        a, b = sorted(client.scheduler_info()["workers"])
        results["workers"] = {"A": a, "B": b}
        results["scheduler"] = cluster.scheduler_address
        listening = client.run(listening_addresses)
        listening["this process"] = listening_addresses()
        results["listening"] = listening
        results["processes"] = [cluster.scheduler.__class__.__name__] + [
            w.__class__.__name__ for w in cluster.workers.values()]
        for address in [a, b, cluster.scheduler_address]:
            assert address.startswith("tcp://127.0.0.1:"), address
        for where, addresses in listening.items():
            assert addresses == ["127.0.0.1"], (where, addresses)

        m = results["memory"] = {"baseline": client.run(memory)}
        cls = MainPayload if by_value else dask_payload.Payload
        payload = client.submit(make_payload, cls, size, workers=[a],
                                allow_other_workers=False, pure=False)
        distributed.wait(payload)
        m["A_after_create"] = client.run(memory, workers=[a])[a]
        results["pickle_path_on_A"] = client.run(
            pickle_path, payload.key, workers=[a])[a]

        moved = time.perf_counter()
        summary = client.submit(checksum, payload, workers=[b],
                                allow_other_workers=False, pure=False)
        results["checksum_on_B"] = summary.result()
        results["transfer_seconds"] = time.perf_counter() - moved
        after = client.run(memory)
        m["A_after_send"], m["B_after_receive"] = after[a], after[b]
        who_has = client.who_has(payload)[payload.key]
        results["who_has"] = list(who_has)

        results["spill_on_B"] = client.run(spill, payload.key, workers=[b])[b]
        results["read_back_on_B"] = client.run(read_back, payload.key,
                                               workers=[b])[b]
        if with_lambda:
            results["lambda"] = client.submit(lambda x: x + 1, 1).result()
        results["cluster_seconds"] = time.perf_counter() - started
    check(size, results, mode, by_value, with_lambda)


def check(size, results, mode, by_value, with_lambda):
    """The assertions, on the measurements alone."""
    expected = ["payload of %d bytes" % size, size, 7 * len(range(0, size, 4096)), 7]
    path = results["pickle_path_on_A"]
    if mode == "patched":
        # `import pickle5` is the standard pickle, which has protocol 5.
        assert path["pickle5_is_pickle"], path
        assert path["highest_protocol"] == 5, path
    else:
        # Stock 3.7 with the backport: protocol 5 comes from pickle5 only.
        assert not path["pickle5_is_pickle"], path
        assert path["highest_protocol"] == 4, path
    assert path["distributed_protocol"] == 5, path
    assert path["payload_class"] == ("__main__.MainPayload" if by_value else
                                     "dask_payload.Payload"), path
    # The array leaves the pickle stream as one out-of-band buffer, and the
    # frames distributed sends are views of the array itself, not copies.
    assert path["buffers"] == [size], path
    assert path["serializer"] == "pickle", path
    assert path["bytes_sharing_the_array"] == size, path
    assert results["checksum_on_B"] == expected, results["checksum_on_B"]
    assert set(results["who_has"]) == set(results["workers"].values()), \
        results["who_has"]

    spilled = results["spill_on_B"]
    assert spilled["on_disk"] and not spilled["in_memory"], spilled
    assert max(spilled["files"].values()) >= size, spilled["files"]
    back = results["read_back_on_B"]
    assert back["checksum"] == expected and back["in_memory"], back
    if with_lambda:
        assert results["lambda"] == 2, results["lambda"]

    m = results["memory"]
    a, b = results["workers"]["A"], results["workers"]["B"]
    created = m["A_after_create"]["peak"] - m["baseline"][a]["peak"]
    sent = m["A_after_send"]["peak"] - m["A_after_create"]["peak"]
    received = m["B_after_receive"]["peak"] - m["baseline"][b]["peak"]
    left = spilled["memory"]["rss"] - m["baseline"][b]["rss"]
    read = back["memory"]["peak"] - spilled["memory"]["rss"]
    ratios = results["ratios"] = {
        "A_create_over_payload": created / size,
        "A_send_extra_over_payload": sent / size,
        "B_receive_over_payload": received / size,
        "B_rss_left_after_spill_over_payload": left / size,
        "B_read_back_over_payload": read / size}
    # 16 MiB of slack on each bound for the allocator and the event loop,
    # which small payloads (CONSUMERS_DASK_MIB) would otherwise feel.
    slack = 16 * MIB / size
    # Creating the payload on A costs one payload; sending it must not add
    # a copy: the frames are views of the array (checked above).
    assert 0.9 <= ratios["A_create_over_payload"] <= 1.1 + slack, ratios
    assert ratios["A_send_extra_over_payload"] <= 0.1 + slack, ratios
    # Receiving it costs B one payload and nothing more, and that was the
    # only copy B held: once spilled, B's RSS is back at its baseline.
    assert ratios["B_receive_over_payload"] <= 1.1 + slack, ratios
    assert ratios["B_rss_left_after_spill_over_payload"] <= 0.1 + slack, \
        ratios
    # Reading back costs two payloads, by distributed's design and not
    # pickle's: zict's File returns the file as one bytes object, and
    # distributed.protocol.serialize.pickle_loads copies a read-only buffer
    # into a bytearray when the array it came from was writeable.
    assert ratios["B_read_back_over_payload"] <= 2.1 + slack, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", choices=["patched", "backport"],
                        default="patched",
                        help="the patched 3.7, or a stock 3.7 with pickle5")
    parser.add_argument("--by-value", action="store_true",
                        help="a payload class of __main__ (cloudpickle)")
    parser.add_argument("--no-lambda", action="store_true",
                        help="do not submit a lambda (needs cloudpickle)")
    args = parser.parse_args()
    results = {"size": args.size_mib * MIB, "mode": args.mode,
               "by_value": args.by_value, "lambda_submitted": not args.no_lambda,
               "ok": False}
    status = 0
    try:
        scenario(args.size_mib * MIB, args.mode, args.by_value,
                 not args.no_lambda, results)
        results["ok"] = True
    except BaseException:
        results["error"] = traceback.format_exc()
        status = 1
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    if status:
        sys.stderr.write(results["error"])
    return status


if __name__ == "__main__":
    sys.exit(main())
