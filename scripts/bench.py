"""Driver of scripts/bench: the scenarios of issue 10, forensnap and coldsnap in alternation
against one forensnap-emulator per scenario, medians printed as a table and as JSON.

Scenarios (EBS latency is fixed + up to 10% jitter; quotas are AWS's, token buckets with a
burst of 100 ms):
  A  no latency, no quota, one 4 GiB snapshot 60% allocated
  B  100 ms, 1,000 req/s per snapshot and per account, one 4 GiB snapshot 60% allocated; S3
     requests (forensnap's parts and checkpoints) take 100 ms too
  C  100 ms, four 2 GiB snapshots 60% allocated at once under one 1,000 req/s account quota;
     S3 requests take 100 ms
  D  no latency, no quota, one 64 GiB snapshot 10% allocated (peak RSS; compare with A)
  E  one 256 GiB snapshot with 1 GiB allocated, S3 idle timeout 5 s; compared with SHA-256
     over 256 GiB of zeros on one core

forensnap runs `forensnap-bench acquire`: every block verified against AWS's checksum, the image
SHA-256 over the whole volume, parts uploaded to the emulator's S3 stand-in, which checks each
part's SHA-256 and keeps only lengths and hashes ("count" mode). coldsnap runs `coldsnap
download` to a file in /dev/shm (tmpfs), deleted after each run. MiB/s is allocated data per
wall second; CPU is user + system of the tool's process(es) (the emulator's own CPU is reported
beside it as emulator_cpu_seconds); RSS is the peak of one process.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

SCENARIOS = {
    "A": dict(latency=0, snapshot_rps=0, account_rps=0, snapshots=[(4, 60)]),
    "B": dict(latency=100, snapshot_rps=1000, account_rps=1000, snapshots=[(4, 60)],
              s3_latency=100),
    "C": dict(latency=100, snapshot_rps=1000, account_rps=1000, snapshots=[(2, 60)] * 4,
              s3_latency=100),
    "D": dict(latency=0, snapshot_rps=0, account_rps=0, snapshots=[(64, 10)]),
    "E": dict(latency=0, snapshot_rps=0, account_rps=0, snapshots=[(256, 100 / 256)],
              idle_timeout=5),
}
BUCKET = "forensnap-bench-evidence"
TMP = "/dev/shm/forensnap-bench"


def run_measured(commands):
    """Run commands at once; return (wall seconds, CPU seconds summed, peak RSS KiB, outputs)."""
    started = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    cpu, rss, outputs = 0.0, 0, []
    for p in procs:
        out = p.stdout.read()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"bench: {' '.join(p.args)} failed ({p.returncode}):\n{err.decode()[-2000:]}")
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss)
        outputs.append(out.decode())
    return time.monotonic() - started, cpu, rss, outputs


def cpu_of(pid):
    """User + system CPU seconds of a running process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        everything = json.load(r)
    s = everything["get_snapshot_block"]
    return s["served"], s["throttled_account"] + s["throttled_resource"], everything["s3"]


def scenario(name, spec, args, runs):
    jitter = spec["latency"] // 10
    cmd = [f"{args.bin_dir}/forensnap-emulator", "serve", "--latency-ms", str(spec["latency"]),
           "--jitter-ms", str(jitter), "--snapshot-rps", str(spec["snapshot_rps"]),
           "--account-rps", str(spec["account_rps"]), "--list-rps", "50", "--s3", "--s3-count",
           "--s3-latency-ms", str(spec.get("s3_latency", 0)), "--bucket", BUCKET]
    if spec.get("idle_timeout"):
        cmd += ["--idle-timeout-secs", str(spec["idle_timeout"])]
    ids = []
    for n, (gib, percent) in enumerate(spec["snapshots"]):
        sid = f"snap-{name.lower()}{n:016x}"
        ids.append(sid)
        cmd += ["--snapshot", f"{sid}:{gib}:{percent}"]
    emulator = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(emulator.stdout.readline())
        data_mib = sum(gib * 1024 * percent / 100 for gib, percent in spec["snapshots"])
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        os.environ.update(env)
        tools = args.tools.split(",")
        results = {tool: [] for tool in tools}
        for run in range(runs):
            for tool in tools if run % 2 == 0 else reversed(tools):
                os.makedirs(TMP, exist_ok=True)
                if tool == "forensnap":
                    commands = [[f"{args.bin_dir}/forensnap-bench", "acquire",
                                 "--endpoint", info["ebs_endpoint"],
                                 "--s3-endpoint", info["s3_endpoint"], "--bucket", BUCKET,
                                 "--prefix", f"{name}-{run}"]
                                + sum((["--snapshot", s] for s in ids), [])]
                else:
                    commands = [[args.coldsnap, "--endpoint", info["ebs_endpoint"], "download",
                                 s, f"{TMP}/{s}-{run}.img"] for s in ids]
                served0, throttled0, s3_0 = stats(info["stats_url"])
                emulator_cpu0 = cpu_of(emulator.pid)
                wall, cpu, rss, outputs = run_measured(commands)
                emulator_cpu = cpu_of(emulator.pid) - emulator_cpu0
                served1, throttled1, s3_1 = stats(info["stats_url"])
                for s in ids:
                    try:
                        os.remove(f"{TMP}/{s}-{run}.img")
                    except FileNotFoundError:
                        pass
                requests = (served1 - served0) + (throttled1 - throttled0)
                row = {
                    "mib_per_second": data_mib / wall,
                    "cpu_seconds_per_gib": cpu / (data_mib / 1024),
                    "peak_rss_mib": rss / 1024,
                    "throttled_percent": 100 * (throttled1 - throttled0) / max(requests, 1),
                    "seconds": wall,
                    # The emulator (EBS and, for forensnap, the S3 stand-in checking every part's
                    # SHA-256) runs on the same machine: its CPU is not the tool's, but it is not
                    # free for the tool either.
                    "emulator_cpu_seconds": emulator_cpu,
                }
                if tool == "forensnap":
                    volumes = json.loads(outputs[0])["volumes"]
                    row["volume_mib_per_second"] = [v["mib_per_second"] for v in volumes]
                    # Parts S3 stored beyond those the objects hold were sent again (a retry
                    # after an error, a cut or a timeout); cuts and BadDigest are counted apart.
                    stored_parts = s3_1["parts"] - s3_0["parts"]
                    # Each volume's object parts, and its block map's (uploaded in 8 MiB parts).
                    expected = sum(v["parts"] + max(1, -(-v["block_map_bytes"] // (8 << 20)))
                                   for v in volumes)
                    row["s3_parts_sent_again"] = stored_parts - expected
                    row["s3_request_timeouts"] = s3_1["request_timeouts"] - s3_0["request_timeouts"]
                    row["s3_bad_digest"] = s3_1["bad_digest"] - s3_0["bad_digest"]
                results[tool].append(row)
                print(f"bench: {name} run {run + 1} {tool}: {row['mib_per_second']:.0f} MiB/s, "
                      f"{row['cpu_seconds_per_gib']:.2f} CPU-s/GiB, {row['peak_rss_mib']:.0f} MiB RSS, "
                      f"{row['throttled_percent']:.2f}% throttled", file=sys.stderr)
        extra = {}
        if name == "E":
            _, _, _, out = run_measured([[f"{args.bin_dir}/forensnap-bench", "sha256", "--gib", "256"]])
            extra["sha256_256_gib_seconds"] = json.loads(out[0])["seconds"]
        return {"data_mib": data_mib, **extra, **{
            tool: {k: statistics.median(r[k] for r in rows)
                   for k in rows[0] if not isinstance(rows[0][k], list)}
            | ({"volume_mib_per_second": rows[len(rows) // 2]["volume_mib_per_second"]}
               if "volume_mib_per_second" in rows[0] else {})
            for tool, rows in results.items()}}
    finally:
        emulator.stdin.close()
        emulator.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--coldsnap")
    parser.add_argument("--tools", default="forensnap,coldsnap")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default="A,B,C,D")
    parser.add_argument("--json")
    args = parser.parse_args()
    report = {"machine": f"{os.cpu_count()} cores", "runs": args.runs, "scenarios": {}}
    for name in args.scenarios.split(","):
        runs = args.runs if name in "ABC" else 1
        report["scenarios"][name] = scenario(name, SCENARIOS[name], args, runs)
    print("| scenario | tool | MiB/s | CPU s/GiB | peak RSS MiB | throttled % |")
    print("|---|---|---:|---:|---:|---:|")
    for name, r in report["scenarios"].items():
        for tool in args.tools.split(","):
            m = r[tool]
            print(f"| {name} | {tool} | {m['mib_per_second']:.0f} | {m['cpu_seconds_per_gib']:.2f} "
                  f"| {m['peak_rss_mib']:.0f} | {m['throttled_percent']:.2f} |")
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
