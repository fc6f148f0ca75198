"""The contender of bench/mlflow.ts: MLflow's own Python client logging metrics with log_batch.

Usage: python mlflow_log_batch.py TRACKING_URI BATCHES METRICS_PER_BATCH RUN_ID [RUN_ID...]
One thread per run id (one caller each), each logging BATCHES batches of METRICS_PER_BATCH metrics.
Prints {"metrics": N, "seconds": S, "cpu": C}: S is the wall time of the logging alone (imports excluded), C the
CPU seconds this process spent in that time (all threads).
"""

import json
import sys
import threading
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main() -> None:
    uri, batches, per_batch, *run_ids = sys.argv[1:]
    batches, per_batch = int(batches), int(per_batch)
    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    # Built before the clock starts, as the TypeScript side builds its arrays before timing.
    payloads = [
        [Metric(f"m{i % 10}", i / 7, now + i, b * per_batch + i) for i in range(per_batch)] for b in range(batches)
    ]

    def caller(run_id: str) -> None:
        for metrics in payloads:
            client.log_batch(run_id, metrics=metrics, synchronous=True)

    threads = [threading.Thread(target=caller, args=(r,)) for r in run_ids]
    started = time.perf_counter()
    cpu_started = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(json.dumps({"metrics": batches * per_batch * len(run_ids), "seconds": elapsed, "cpu": cpu}))


if __name__ == "__main__":
    main()
