#!/usr/bin/env python3
"""Issue 19's Pebble run, started by `scripts/bench --scale N`: `renew --force` over N stored
certificates from Pebble in one run, with `--jobs` 1, 2, 4, 8 and 16; for each the wall
time, the ACME requests per certificate against the 7N+2 minimum (newOrder, authorization,
challenge, a poll, finalize, a poll, certificate for each; the directory and one nonce per
run), and where the time goes: certctl's own CPU and Pebble's CPU against the wall time.
The N certificates are hard-linked clones of 4 real ones (bench.py's `clone_state`); each
run starts from fresh clones. Prints a Markdown table.

    bench_pebble_scale.py STATE.json N
"""

import os
import resource
import shutil
import sys

from bench import DOMAIN, EMAIL, Lab, clone_state, log, total_requests

JOBS = [1, 2, 4, 8, 16]


def pebble_cpu():
    """This lab's Pebble's CPU seconds so far (user + system), from /proc (its pid is
    BENCH_PEBBLE_PID, set by scripts/bench)."""
    with open(f"/proc/{os.environ['BENCH_PEBBLE_PID']}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    lab = Lab(sys.argv[1])
    n = int(sys.argv[2])
    tpl = lab.fresh_dir("scale-templates")
    names = [f"s{i}.{DOMAIN}" for i in range(4)]
    log(f"4 template certificates from Pebble, cloned to {n} for each run")
    lab.run(lab.certctl_request(tpl, names[0], "--agree-tos", "--email", EMAIL), "certctl")
    for name in names[1:]:
        lab.run(lab.certctl_request(tpl, name), "certctl")
    runs = []
    for jobs in JOBS:
        work = lab.fresh_dir(f"scale-{jobs}")
        clone_state(tpl, work, names, n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        pebble_before = pebble_cpu()
        run = lab.run(lab.certctl(work, "renew", "--force", "--jobs", str(jobs), "-q"),
                      "certctl")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        requests = total_requests(run["requests"])
        runs.append({
            "jobs": jobs,
            "wall": run["wall"],
            "requests": requests,
            "certctl_cpu": (after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime),
            "pebble_cpu": pebble_cpu() - pebble_before,
            "load": os.getloadavg()[0],
        })
        log(f"  --jobs {jobs}: {run['wall']:.2f} s, {requests} requests")
        shutil.rmtree(work)
    lab.results["pebble_scale"] = {"n": n, "runs": runs}
    lab.save()
    print(f"`renew --force` over {n:,} certificates from Pebble, one run each "
          f"(minimum {7 * n + 2:,} requests)\n")
    print("| --jobs | wall | per certificate | requests | per certificate (min 7) "
          "| certctl CPU | Pebble CPU | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(f"| {r['jobs']} | {r['wall']:.2f} s | {r['wall'] / n * 1000:.1f} ms | "
              f"{r['requests']:,} | {r['requests'] / n:.2f} | {r['certctl_cpu']:.2f} s | "
              f"{r['pebble_cpu']:.2f} s | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
