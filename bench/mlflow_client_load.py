"""The stock mlflow Python client as the load of bench/api.ts: N client processes against one tracking server.

Usage: python mlflow_client_load.py SPEC_JSON
SPEC: {"uri", "processes", "ops": [...], "runs": [run id per process], "experiment", "search_experiment",
       "model", "alias", "filter", "batches", "metrics_per_batch", "calls": {op: calls per process}}
The token, when the server wants one, comes from MLFLOW_TRACKING_TOKEN, as for any user of the client.

Each process is forked after mlflow is imported (imports stay off the clock) and makes its own MlflowClient. For
each op, every process builds what it sends, then all start together at a barrier and the clock runs until the last
one is done. Prints one JSON line per op: {"op", "units", "seconds", "latencies": [ms...], "cpu"}: units are
metrics for log-batch and requests otherwise; cpu is the CPU seconds the client processes spent in that time.
"""

import json
import multiprocessing as mp
import os
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def worker(index, spec, barrier, results):
    try:
        run(index, spec, barrier, results)
    except Exception:
        # The others would wait at the barrier for this one: break it, so that every process ends.
        barrier.abort()
        raise


def run(index, spec, barrier, results):
    client = MlflowClient(tracking_uri=spec["uri"])
    per = spec["metrics_per_batch"]
    for op in spec["ops"]:
        calls = spec["calls"][op]
        if op == "log-batch":
            run_id = spec["runs"][index]
            now = int(time.time() * 1000)
            payloads = [
                [Metric(f"m{i % 20}", i / 7, now + i, b * per + i) for i in range(per)] for b in range(calls)
            ]

            def call(k, run_id=run_id, payloads=payloads):
                client.log_batch(run_id, metrics=payloads[k], synchronous=True)

        elif op == "create-run":

            def call(k):
                client.create_run(spec["experiment"])

        elif op == "alias":

            def call(k):
                client.get_model_version_by_alias(spec["model"], spec["alias"])

        elif op == "search":

            def call(k):
                client.search_runs([spec["search_experiment"]], filter_string=spec["filter"], max_results=100)

        else:
            raise ValueError(f"unknown op {op}")
        latencies = []
        cpu = time.process_time()
        barrier.wait()
        for k in range(calls):
            started = time.perf_counter()
            call(k)
            latencies.append((time.perf_counter() - started) * 1000)
        results.put((op, latencies, time.process_time() - cpu))
        barrier.wait()


def main() -> None:
    spec = json.loads(sys.argv[1])
    n = spec["processes"]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n + 1, timeout=900)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, spec, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    try:
        measure(spec, barrier, results)
    except Exception as err:
        for p in procs:
            p.kill()
        sys.exit(f"the client processes did not finish: {err!r}")
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"a client process failed (exit {p.exitcode})")


def measure(spec, barrier, results):
    n = spec["processes"]
    for op in spec["ops"]:
        barrier.wait()
        started = time.perf_counter()
        latencies, cpu = [], 0.0
        for _ in range(n):
            _, lat, used = results.get(timeout=900)
            latencies.extend(lat)
            cpu += used
        seconds = time.perf_counter() - started
        barrier.wait()
        calls = spec["calls"][op] * n
        units = calls * spec["metrics_per_batch"] if op == "log-batch" else calls
        print(json.dumps({"op": op, "units": units, "seconds": seconds, "latencies": latencies, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    main()
