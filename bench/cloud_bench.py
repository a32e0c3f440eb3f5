"""Benchmark of the cloud runtime on the local cloud (real Firestore and Pub/Sub emulators,
functions under functions-framework): `python bench/cloud_bench.py`.

Runs a 1 -> 200 -> 1 fan-out/fan-in and a 50-step chain, started by a message on the start
topic, with instant jobs (the mock Task Runner ends a job at its first check) and a polling
interval of 0; `--fan N` runs only a 1 -> N -> 1 (N up to 10,000; past the DAG file's
limit of 5,000 steps it starts with the engine's StartRun on the engine topic). Prints wall time,
steps/s, the p50/p95 latency from a job seen finished (the mock's answer to the status
request) to its successors' submission, Firestore reads, writes and Pub/Sub messages per
step (counted inside the functions, which the local cloud serves from
`devtools/localcloud/counted_main.py` for this) and the document written most. In the same
run it measures the baseline: as many plain messages pushed through a function that writes
one Firestore document each. Last, a cost per 1,000 steps from those counts and list
prices, next to AWS Step Functions and Google Cloud Workflows for the same DAG.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.localcloud import functions, pubsub_wiring
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import DEAD_LETTER_TOPIC
from workflow.adapters.gcp.pubsub_bus import attributes
from workflow.dagfile.limits import MAX_STEPS
from workflow.model import codec
from workflow.model.dag import Dag
from workflow.model.messages import StartRun

# Every function, ours and the baseline's, serves this many requests at once.
SERVER = {"THREADS": "16", "WORKERS": "2"}

# List prices (USD) used for the cost comparison.
FIRESTORE_READ = 0.03 / 100_000
FIRESTORE_WRITE = 0.09 / 100_000
FUNCTION_CALL = 0.40 / 1_000_000  # plus compute, not counted here
PUBSUB_PER_MESSAGE = 40 / 2**40 * 1000  # $40/TiB, at least 1,000 bytes per publish and per delivery
STEP_FUNCTIONS_TRANSITION = 0.025 / 1000
WORKFLOWS_EXTERNAL_STEP = 0.025 / 1000
WORKFLOWS_INTERNAL_STEP = 0.01 / 1000


def fan(width: int, max_parallel: int = 0) -> dict[str, Any]:
    steps = [{"id": "src", "task": {"imageUri": "img/src"}}]
    steps += [{"id": f"m{i}", "dependsOn": ["src"], "task": {"imageUri": "img/m"}} for i in range(width)]
    steps.append({"id": "sink", "dependsOn": [f"m{i}" for i in range(width)], "task": {"imageUri": "img/sink"}})
    limit = {"maxParallel": max_parallel} if max_parallel else {}
    return {"name": f"fan-{width}" + (f"-max{max_parallel}" if max_parallel else ""), "steps": steps, **limit}


def chain(length: int) -> dict[str, Any]:
    steps = [{"id": f"c{i}", "dependsOn": [f"c{i - 1}"] if i else [], "task": {"imageUri": "img/c"}}
             for i in range(length)]
    return {"name": f"chain-{length}", "steps": steps}


def ops(cloud: LocalCloud) -> dict[str, Any]:
    """Sum of the function processes' cumulative counters (the last `ops` line of each);
    `doc_writes`: the writes each document received, summed over the processes."""
    total: dict[str, Any] = {"reads": 0, "writes": 0, "published": 0, "invocations": 0, "doc_writes": Counter()}
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for name, path in cloud.logs.items():
        if name not in cloud.functions:
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if str(entry.get("message", "")).startswith("ops "):
                counts = json.loads(entry["message"][4:])
                last[(name, counts["pid"])] = counts
                total["invocations"] += 1
    for counts in last.values():
        for key in ("reads", "writes", "published"):
            total[key] += int(counts.get(key) or 0)
        total["doc_writes"].update(counts.get("doc_writes") or {})
    return total


def latencies(cloud: LocalCloud, dag: dict[str, Any]) -> list[float]:
    """For each step with dependencies: its submission time minus the time its last
    dependency's job was seen finished (first status answer; jobs end at once)."""
    seen: dict[str, float] = {}
    submitted: dict[str, float] = {}
    for r in cloud.mock.requests():
        if r["status"] != 200:
            continue
        if r["path"] == "/jobstatus":
            seen.setdefault(str(r["query"]["job_id"]).rsplit("-", 1)[0], r["time"])
        elif r["path"] == "/job":
            submitted.setdefault(r["body"]["job_name"], r["time"])
    out = []
    for step in dag["steps"]:
        deps = step.get("dependsOn") or []
        if deps and step["id"] in submitted and all(d in seen for d in deps):
            out.append(submitted[step["id"]] - max(seen[d] for d in deps))
    return out


def run_dag(cloud: LocalCloud, dag: dict[str, Any]) -> dict[str, Any]:
    cloud.mock.reset()
    before = ops(cloud)
    run_id = f"bench-{dag['name']}-{uuid.uuid4().hex[:6]}"
    t0 = time.time()
    if len(dag["steps"]) <= MAX_STEPS:
        cloud.publish_start({"dag": dag, "run_id": run_id})
    else:  # past the DAG file's limit: the engine's own StartRun, as admission would send it
        named = [{**s, "task": {"name": s["id"], **s["task"]}} for s in dag["steps"]]  # as validation fills in
        start = StartRun(run_id, Dag.from_dict({**dag, "steps": named}), cloud.mock_url, "inline")
        cloud.publish_engine(codec.encode(start), attributes(start))
    run = cloud.wait_run(run_id, timeout=600 + len(dag["steps"]) / 5, interval=1.0)  # finished_at times it
    wall = (run.finished_at or time.time()) - t0
    assert run.status.value == "SUCCEEDED", run
    time.sleep(1.0)  # let the last invocations log their counters
    after = ops(cloud)
    n = len(dag["steps"])
    lat = sorted(latencies(cloud, dag))
    diff = {k: after[k] - before[k] for k in after}
    writes_by_doc = {path.replace(run_id, "{run}"): n for path, n in diff["doc_writes"].items()}
    hottest = max(writes_by_doc, key=writes_by_doc.__getitem__, default="-")
    slots = [n for path, n in writes_by_doc.items() if "/slots/" in path]
    return {
        "dag": dag["name"], "steps": n, "wall_s": wall, "steps_per_s": n / wall,
        "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "reads": diff["reads"] / n, "writes": diff["writes"] / n,
        "messages": (diff["published"] + 1) / n, "invocations": diff["invocations"] / n,
        "submissions": len(cloud.mock.submissions()), "hottest": hottest,
        "most_writes": writes_by_doc.get(hottest, 0), "slot_writes": max(slots, default=0),
    }


def cpu(cloud: LocalCloud, functions: list[Any]) -> dict[str, float]:
    """CPU seconds used so far by the emulators' process groups and by `functions`' (from
    /proc; a process that has ended is no longer counted, so sample while they run)."""
    groups = {"firestore": [cloud.firestore], "pubsub": [cloud.pubsub], "functions": functions}
    pgids = {s.process.pgid: name for name, services in groups.items() for s in services if s is not None}
    used = dict.fromkeys(groups, 0.0)
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in pgids:
            used[pgids[int(fields[2])]] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_since(cloud: LocalCloud, functions: list[Any], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in cpu(cloud, functions).items()}


def baseline(cloud: LocalCloud, count: int) -> tuple[float, dict[str, float]]:
    """Seconds to push `count` messages through a function writing one document each
    (after 20 warm-up messages, as the engine's runs follow a warm-up run), and the
    emulators' and the function's CPU seconds meanwhile."""
    collection = f"baseline-{uuid.uuid4().hex[:8]}"
    # Its own runtime dir: gunicorn keeps a control socket there, one per server.
    env = {**cloud.env, **SERVER, "BASELINE_COLLECTION": collection, "XDG_RUNTIME_DIR": tempfile.mkdtemp()}
    fn = functions.start_function(Path("devtools/localcloud/baseline.py"), "write_one", env)
    try:
        topic = f"baseline-{uuid.uuid4().hex[:8]}"
        pubsub_wiring.wire_push_trigger(cloud.project, topic, fn.url, host=cloud.pubsub_host)
        push(cloud, topic, collection, 20)
        before = cpu(cloud, [fn])
        return push(cloud, topic, collection, count), cpu_since(cloud, [fn], before)
    finally:
        fn.stop()


def push(cloud: LocalCloud, topic: str, collection: str, count: int) -> float:
    """Publish `count` messages at once; seconds until `count` more documents exist."""
    db = cloud.firestore_client()
    have = sum(1 for _ in db.collection(collection).select([]).stream())
    publisher = cloud.publisher()
    path = pubsub_wiring.topic_path(cloud.project, topic)
    t0 = time.time()
    futures = [publisher.publish(path, json.dumps({"i": i}).encode()) for i in range(count)]
    for f in futures:
        f.result(timeout=60)
    while sum(1 for _ in db.collection(collection).select([]).stream()) < have + count:
        if time.time() - t0 > 600:
            raise TimeoutError("baseline did not finish")
        time.sleep(0.1)
    return time.time() - t0


def print_rows(results: list[dict[str, Any]]) -> None:
    print("cloud runtime on the local cloud (Firestore and Pub/Sub emulators, functions-framework)")
    print(f"{'DAG':<10}{'steps':>6}{'wall s':>8}{'steps/s':>9}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'reads':>7}{'writes':>8}{'msgs':>6}{'calls':>7}   (per step)")
    for r in results:
        print(f"{r['dag']:<10}{r['steps']:>6}{r['wall_s']:>8.2f}{r['steps_per_s']:>9.1f}{r['p50_ms']:>8.0f}"
              f"{r['p95_ms']:>8.0f}{r['reads']:>7.2f}{r['writes']:>8.2f}{r['messages']:>6.2f}"
              f"{r['invocations']:>7.2f}")
        assert r["submissions"] == r["steps"], f"{r['dag']}: {r['submissions']} submissions"


def fan_only(width: int, deliveries: int = 1) -> None:
    """A 1 -> `width` -> 1 alone (after the warm-up): its row, its hottest document and,
    with every engine message delivered `deliveries` times, the messages dead-lettered."""
    with LocalCloud(poll=0, mock_duration=0, count_ops=True, extra_env=SERVER,
                    engine_deliveries=deliveries) as cloud:
        run_dag(cloud, fan(10))
        dead_letters(cloud)
        r = run_dag(cloud, fan(width))
        time.sleep(10.0 if deliveries > 1 else 0.0)  # redeliveries of the run's last messages
        dead = dead_letters(cloud)
    print_rows([r])
    print(f"  {r['dag']}: the document written most: {r['hottest']} ({r['most_writes']} writes)")
    print(f"  {r['dag']}: jobs submitted: {r['submissions']} for {r['steps']} steps")
    print(f"  {r['dag']}: engine messages delivered {deliveries} time(s): "
          f"{round(r['messages'] * r['steps'])} published, {dead} dead-lettered")


def dead_letters(cloud: LocalCloud) -> int:
    """Messages that reached the dead-letter topic since the last call (taken off its pull
    subscription)."""
    admin = pubsub_wiring.subscription_admin(host=cloud.pubsub_host)
    path = pubsub_wiring.subscription_path(cloud.project, f"{DEAD_LETTER_TOPIC}-sub")
    taken = 0
    while got := admin.pull(subscription=path, max_messages=1000, return_immediately=True,
                            timeout=30).received_messages:
        admin.acknowledge(subscription=path, ack_ids=[m.ack_id for m in got])
        taken += len(got)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fan", type=int, metavar="N", help="run only a 1 -> N -> 1 (N up to 10,000)")
    parser.add_argument("--deliveries", type=int, default=1, metavar="D",
                        help="with --fan: deliver every engine message D times (default: %(default)s)")
    args = parser.parse_args()
    if args.fan:
        if not 1 <= args.fan <= 10_000:
            parser.error("--fan takes a width from 1 to 10,000")
        fan_only(args.fan, args.deliveries)
        return
    with LocalCloud(poll=0, mock_duration=0, count_ops=True, extra_env=SERVER) as cloud:
        run_dag(cloud, fan(10))  # warm-up: first calls into the emulators and functions are slow
        before = cpu(cloud, list(cloud.functions.values()))
        results = [run_dag(cloud, fan(200))]
        fan_cpu = cpu_since(cloud, list(cloud.functions.values()), before)
        results += [run_dag(cloud, chain(50)), run_dag(cloud, fan(200, 20))]
        fan_messages = round(results[0]["messages"] * results[0]["steps"])
        base, base_cpu = baseline(cloud, fan_messages)
    print_rows(results)
    f, limited = results[0], results[2]
    print(f"\nbaseline: {fan_messages} plain messages, one document each: {base:.2f} s")
    print(f"fan-200 run / baseline: {f['wall_s'] / base:.2f}x (target <= 2x)")
    print("CPU s, fan-200 / baseline: " + ", ".join(f"{k} {fan_cpu[k]:.1f} / {base_cpu[k]:.1f}" for k in fan_cpu)
          + f"; total {sum(fan_cpu.values()):.1f} / {sum(base_cpu.values()):.1f} on {os.cpu_count()} CPUs")
    joins = f["writes"]
    print(f"Firestore writes per step in fan-200 (each has 1 or 200 incoming edges): {joins:.2f}")
    print(f"fan-200 under maxParallel 20: {limited['wall_s']:.2f} s, {limited['wall_s'] / f['wall_s']:.2f}x the "
          f"unlimited run; {limited['writes']:.2f} writes/step against {joins:.2f}")
    for r in (f, limited):
        print(f"  {r['dag']}: the document written most: {r['hottest']} ({r['most_writes']} writes)")
    print(f"  {limited['dag']}: the slot document written most: {limited['slot_writes']} writes")
    per_step = (f["reads"] * FIRESTORE_READ + f["writes"] * FIRESTORE_WRITE
                + f["invocations"] * FUNCTION_CALL + 2 * f["messages"] * PUBSUB_PER_MESSAGE)
    # Same DAG elsewhere, with jobs that end at their first check: per step one Task state,
    # one status check and one Choice (3 transitions); Workflows: 2 HTTP calls + 2 internal steps.
    print("\ncost per 1,000 steps (list prices; compute time excluded):")
    print(f"  this runtime        ${1000 * per_step:.4f}")
    print(f"  AWS Step Functions  ${1000 * 3 * STEP_FUNCTIONS_TRANSITION:.4f} (3 state transitions per step)")
    print(f"  Cloud Workflows     ${1000 * (2 * WORKFLOWS_EXTERNAL_STEP + 2 * WORKFLOWS_INTERNAL_STEP):.4f}"
          " (2 external + 2 internal steps per step)")


if __name__ == "__main__":
    main()
