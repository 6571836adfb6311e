"""Helpers for scripts/bench (run with the project's .venv python; see `scripts/bench --help`).

Subcommands:
  make-repo DIR N APPS [VIA]
                           a config repository of N copies of examples/pipelines/web.yaml
                           (+ apps/web/settings), each with its own names, and the file APPS
                           (NAME:CONTAINER per line) for `examples/bootstrap-emulator --apps-file`;
                           VIA=cloudtrail puts the S3 triggers on the CloudTrail route
  trails URL               the CloudTrail trails in moto and the objects each one's advanced
                           selectors list, as JSON
  moto URL ACTION          POST /moto-api/reset or /moto-api/recorder/{start,stop,reset}-recording
  download URL FILE        GET /moto-api/recorder/download-recording into FILE
  classify FILE N [SKIP]   counts the recorded requests (after the first SKIP lines) by operation,
                           as JSON on stdout
  wait-ready URL PID SECS  waits until URL answers 200 (slipway's /readyz), while PID lives
  aws-counted URL          the sum of slipway_aws_requests_total on a controller's /metrics (what
                           slipway counted itself, for a cross-check of the recording)
  sample PID SECS          CPU (utime+stime) and memory of PID over SECS seconds, as JSON
  report RESULTS.jsonl     prints the tables; --json FILE also writes them as one JSON document

Requests are classified from what the SDK sent, never from slipway's own counters:
  service    the SigV4 credential scope of the Authorization header (…/REGION/SERVICE/aws4_request)
  operation  the X-Amz-Target header (JSON protocols: ECR, ECS, CodeBuild, CodeDeploy,
             CodePipeline, CloudTrail, EventBridge), Action= in the form body or query (query
             protocols: ELBv2, IAM, STS), or method + path + sub-resource (S3, REST)
A read is an operation named Get*, Describe*, List*, Head* or BatchGet* (the rule slipway's own
call counter uses, crates/aws/src/calls.rs); everything else is a write.
"""

import base64
import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

READ_PREFIXES = ("Get", "Describe", "List", "Head", "BatchGet", "Receive")
SHORT_SERVICE = {"elasticloadbalancing": "elbv2"}


def is_read(operation):
    return operation.startswith(READ_PREFIXES)


# ---------------------------------------------------------------- make-repo

def make_repo(out, n, apps_file, via="eventbridge"):
    import yaml  # PyYAML comes with moto[server]

    root = Path(__file__).resolve().parent.parent
    template = yaml.safe_load((root / "examples/pipelines/web.yaml").read_text())
    settings = root / "examples/apps/web/settings"
    spec = template["spec"]
    # The seed-000 shape the bench relies on; a changed web.yaml should fail here, loudly.
    assert spec["triggers"].get("ecrPush") is True and "s3" in spec["triggers"], "web.yaml lost a trigger"
    assert "build" not in spec, "web.yaml is no longer seed 000 (it has a build)"

    width = max(4, len(str(n)))
    out = Path(out)
    (out / "pipelines").mkdir(parents=True)
    apps = []
    for i in range(1, n + 1):
        name = f"web-{i:0{width}d}"
        doc = json.loads(json.dumps(template))  # a deep copy
        doc["metadata"]["name"] = name
        s = doc["spec"]
        s["image"]["repository"] = f"demo-{name}"
        s["source"]["path"] = f"apps/{name}/settings"
        s["source"]["bucket"] = f"slipway-demo-{name}-settings"
        if via == "cloudtrail":
            # One shared trail (slipway-s3-writes) logging to the bucket bootstrap-emulator makes.
            s["triggers"]["s3"] = {"via": "cloudtrail", "logBucket": "slipway-demo-trail-logs", "logPrefix": "slipway"}
        d = s["deploy"]
        d["service"] = name
        d["targetGroups"] = [f"{name}-blue", f"{name}-green"]
        d["prodListener"]["loadBalancer"] = f"demo-{name}-alb"
        d["testListener"]["loadBalancer"] = f"demo-{name}-alb"
        (out / "pipelines" / f"{name}.yaml").write_text(
            f"# scripts/bench: examples/pipelines/web.yaml renamed to {name}\n"
            + yaml.safe_dump(doc, sort_keys=False)
        )
        app_dir = out / "apps" / name / "settings"
        app_dir.mkdir(parents=True)
        for f in settings.iterdir():
            text = f.read_text()
            if f.name == "taskdef.json":
                text = text.replace('"family": "web"', f'"family": "{name}"').replace('"/ecs/web"', f'"/ecs/{name}"')
            (app_dir / f.name).write_text(text)
        container = re.search(r'ContainerName:\s*"?([\w-]+)', (settings / d["appSpec"]).read_text())
        apps.append(f"{name}:{container.group(1) if container else 'application'}")
    Path(apps_file).write_text("\n".join(apps) + "\n")


def trails(url):
    import boto3  # comes with moto

    ct = boto3.client("cloudtrail", endpoint_url=url, region_name=os.environ["AWS_REGION"])
    out = {}
    for t in ct.list_trails().get("Trails", []):
        selectors = ct.get_event_selectors(TrailName=t["Name"]).get("AdvancedEventSelectors", [])
        arns = [v for sel in selectors for f in sel["FieldSelectors"] if f["Field"] == "resources.ARN" for v in f.get("Equals", [])]
        out[t["Name"]] = len(arns)
    print(json.dumps(out))


# ---------------------------------------------------------------- moto API

def post(url):
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=60) as r:
        r.read()


def moto(url, action):
    path = "/moto-api/reset" if action == "reset-state" else f"/moto-api/recorder/{action}"
    post(url.rstrip("/") + path)


def download(url, dest):
    with urllib.request.urlopen(url.rstrip("/") + "/moto-api/recorder/download-recording", timeout=300) as r:
        Path(dest).write_bytes(r.read())


# ---------------------------------------------------------------- classify

# S3 sub-resources (the query key that selects the operation) → operation name stem.
S3_BUCKET_SUB = {
    "versioning": "BucketVersioning", "tagging": "BucketTagging", "policy": "BucketPolicy",
    "lifecycle": "BucketLifecycleConfiguration", "encryption": "BucketEncryption",
    "publicAccessBlock": "PublicAccessBlock", "ownershipControls": "BucketOwnershipControls",
    "acl": "BucketAcl", "location": "BucketLocation", "notification": "BucketNotificationConfiguration",
    "logging": "BucketLogging", "cors": "BucketCors", "website": "BucketWebsite",
    "replication": "BucketReplication", "object-lock": "ObjectLockConfiguration",
    "policyStatus": "BucketPolicyStatus", "accelerate": "BucketAccelerateConfiguration",
    "requestPayment": "BucketRequestPayment",
}
S3_OBJECT_SUB = {"tagging": "ObjectTagging", "acl": "ObjectAcl", "retention": "ObjectRetention",
                 "legal-hold": "ObjectLegalHold", "attributes": "ObjectAttributes"}


def s3_operation(method, path, query, headers):
    if "x-id" in query:  # the Rust SDK names many REST operations itself
        return query["x-id"][0]
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets" if method == "GET" else None
    keys = set(query)
    if len(parts) == 1:  # the bucket
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST" and "delete" in keys:
            return "DeleteObjects"
        sub = next((S3_BUCKET_SUB[k] for k in keys if k in S3_BUCKET_SUB), None)
        if method == "GET":
            if sub:
                return f"Get{sub}"
            if "versions" in keys:
                return "ListObjectVersions"
            if "uploads" in keys:
                return "ListMultipartUploads"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if method == "PUT":
            return f"Put{sub}" if sub else "CreateBucket"
        if method == "DELETE":
            if sub == "BucketLifecycleConfiguration":
                return "DeleteBucketLifecycle"
            return f"Delete{sub}" if sub else "DeleteBucket"
        return None
    sub = next((S3_OBJECT_SUB[k] for k in keys if k in S3_OBJECT_SUB), None)
    if method == "GET":
        return f"Get{sub}" if sub else ("ListParts" if "uploadId" in keys else "GetObject")
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if sub:
            return f"Put{sub}"
        if "uploadId" in keys:
            return "UploadPart"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "DELETE":
        if sub == "ObjectTagging":
            return "DeleteObjectTagging"
        return "AbortMultipartUpload" if "uploadId" in keys else "DeleteObject"
    if method == "POST":
        if "uploads" in keys:
            return "CreateMultipartUpload"
        if "uploadId" in keys:
            return "CompleteMultipartUpload"
    return None


def classify_entry(entry):
    """(service, operation) of one recorded request; operation None when it cannot be told."""
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    method = entry.get("method", "").upper()
    url = urlsplit(entry.get("url", ""))
    query = parse_qs(url.query, keep_blank_values=True)
    scope = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", headers.get("authorization", ""))
    service = scope.group(1) if scope else None

    target = headers.get("x-amz-target")
    if target:
        prefix, _, op = target.rpartition(".")
        return SHORT_SERVICE.get(service, service or prefix), op or None
    if "Action" in query:
        return SHORT_SERVICE.get(service, service or "?"), query["Action"][0]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8", "replace")
        except ValueError:
            body = ""
    if "x-www-form-urlencoded" in headers.get("content-type", "") or body.startswith("Action="):
        action = parse_qs(body).get("Action")
        if action:
            return SHORT_SERVICE.get(service, service or "?"), action[0]
    if service == "s3":
        return "s3", s3_operation(method, unquote(url.path), query, headers)
    return SHORT_SERVICE.get(service, service or "?"), None


def classify(path, n, skip=0):
    lines = Path(path).read_text().splitlines()[skip:]
    ops = Counter()
    unknown = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            unknown.append(f"line {skip + i + 1}: not JSON ({e}): {line[:200]}")
            continue
        service, op = classify_entry(entry)
        if op is None:
            unknown.append(f"{entry.get('method')} {entry.get('url')} (service {service})")
            continue
        ops[f"{service}:{op}"] += 1
    reads = sum(c for k, c in ops.items() if is_read(k.split(":", 1)[1]))
    writes = {k: c for k, c in ops.items() if not is_read(k.split(":", 1)[1])}
    return {
        "requests": sum(ops.values()) + len(unknown),
        "lines": len(lines),
        "reads": reads,
        "reads_per_pipeline": round(reads / n, 2) if n else None,
        "writes": sum(writes.values()),
        "write_operations": writes,
        "unknown": unknown,
        "operations": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


# ---------------------------------------------------------------- processes

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_ready(url, pid, seconds):
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not alive(pid):
            sys.exit(f"process {pid} exited before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    print(f"{time.monotonic() - start:.2f}")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer 200 within {seconds} s")


def aws_counted(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("slipway_aws_requests_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    print(total)


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # kB
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().split(") ", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def sample(pid, seconds):
    hz = os.sysconf("SC_CLK_TCK")
    t0, w0 = cpu_ticks(pid), time.monotonic()
    rss = []
    end = w0 + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        rss.append(proc_status(pid)["VmRSS"])
    t1, w1 = cpu_ticks(pid), time.monotonic()
    status = proc_status(pid)
    cpu_s = (t1 - t0) / hz
    print(json.dumps({
        "seconds": round(w1 - w0, 2),
        "cpu_seconds": round(cpu_s, 3),
        "cpu_percent_of_core": round(100 * cpu_s / (w1 - w0), 2),
        "rss_kb": status["VmRSS"],
        "rss_max_kb": max(rss) if rss else status["VmRSS"],
        "hwm_kb": status["VmHWM"],
    }))


# ---------------------------------------------------------------- report

def mb(kb):
    return f"{kb / 1024:.0f}" if kb is not None else "-"


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def report(results_path, json_out=None, machine=""):
    results = [json.loads(l) for l in Path(results_path).read_text().splitlines() if l.strip()]
    if not results:
        sys.exit("no results")
    print()
    print(f"slipway bench: {machine}")
    print()
    header = ["", *[f"N={r['n']}" for r in results]]
    get = lambda *path: [dig(r, path) for r in results]
    rows = [
        ["generate repository (s)", *map(fmt, get("phases", "generate_s"))],
        ["bootstrap emulator (s)", *map(fmt, get("phases", "bootstrap_s"))],
        ["apply, first: wall (s)", *map(fmt, get("apply", "wall_s"))],
        ["apply, first: slipway CPU (s)", *map(fmt, get("apply", "cpu_s"))],
        ["apply, first: peak RSS (MB)", *map(mb, get("apply", "max_rss_kb"))],
        ["no-op plan: wall (s)", *map(fmt, get("plan", "wall_s"))],
        ["no-op plan: slipway CPU (s)", *map(fmt, get("plan", "cpu_s"))],
        ["no-op plan: reads", *map(fmt, get("plan", "calls", "reads"))],
        ["no-op plan: reads per pipeline", *map(fmt, get("plan", "calls", "reads_per_pipeline"))],
        ["no-op plan: writes", *map(fmt, get("plan", "calls", "writes"))],
        ["no-op plan: peak RSS (MB)", *map(mb, get("plan", "max_rss_kb"))],
        ["run --once: wall (s)", *map(fmt, get("once", "wall_s"))],
        ["run --once: slipway CPU (s)", *map(fmt, get("once", "cpu_s"))],
        ["run --once: reads", *map(fmt, get("once", "calls", "reads"))],
        ["run --once: reads per pipeline", *map(fmt, get("once", "calls", "reads_per_pipeline"))],
        ["run --once: writes", *map(fmt, get("once", "calls", "writes"))],
        ["run --once: peak RSS (MB)", *map(mb, get("once", "max_rss_kb"))],
    ]
    if any(r.get("idle") for r in results):
        rows += [
            ["run: start to /readyz (s)", *map(fmt, get("idle", "ready_s"))],
            ["run: first pass reads", *map(fmt, get("idle", "first_pass", "reads"))],
            ["run: first pass, slipway's own count (no sts)", *map(fmt, get("idle", "slipway_counted"))],
            ["run: first pass writes", *map(fmt, get("idle", "first_pass", "writes"))],
            ["run idle: window (s)", *map(fmt, get("idle", "sample", "seconds"))],
            ["run idle: CPU (% of a core)", *map(fmt, get("idle", "sample", "cpu_percent_of_core"))],
            ["run idle: AWS requests", *map(fmt, get("idle", "idle_calls", "requests"))],
            ["run idle: RSS (MB)", *map(mb, get("idle", "sample", "rss_kb"))],
            ["run idle: peak RSS so far (MB)", *map(mb, get("idle", "sample", "hwm_kb"))],
        ]
    if any(r.get("change_events") and r.get("idle") for r in results):
        # A running controller with --change-events reads every pipeline once per full check
        # (as run --once does) and long-polls the queue in between: per 5 minutes, per pipeline.
        def steady(r, full_check_s):
            once, idle = r["once"]["calls"], r["idle"]
            polls_per_5min = idle["idle_calls"]["reads"] * 300 / idle["sample"]["seconds"]
            return once["reads_per_pipeline"] * 300 / full_check_s + polls_per_5min / r["n"]
        rows += [
            ["change feed: long polls in the idle window", *map(fmt, get("idle", "idle_calls", "operations", "sqs:ReceiveMessage"))],
            *[[f"steady state, full check every {h} h: reads per pipeline per 5 min", *[fmt(steady(r, h * 3600)) for r in results]]
              for h in (1, 2)],
        ]
    table(rows, header)

    for r in results:
        n = r["n"]
        plan_ops = r["plan"]["calls"]["operations"]
        once_ops = r["once"]["calls"]["operations"]
        names = sorted(set(plan_ops) | set(once_ops), key=lambda k: (-plan_ops.get(k, 0), -once_ops.get(k, 0), k))
        print()
        print(f"N={n}: requests by operation (R read, W write; per pipeline = count / {n})")
        rows = []
        for k in names:
            p, o = plan_ops.get(k, 0), once_ops.get(k, 0)
            rows.append([k, "R" if is_read(k.split(":", 1)[1]) else "W", p, fmt(p / n), o, fmt(o / n)])
        rows.append(["total", "", r["plan"]["calls"]["requests"], fmt(r["plan"]["calls"]["requests"] / n),
                     r["once"]["calls"]["requests"], fmt(r["once"]["calls"]["requests"] / n)])
        table(rows, ["operation", "", "plan", "/pipeline", "run --once", "/pipeline"])
    if json_out:
        Path(json_out).write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
        print(f"\n(written to {json_out})")


def dig(d, path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


# ---------------------------------------------------------------- main

def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "make-repo":
        make_repo(args[0], int(args[1]), args[2], *args[3:4])
    elif cmd == "trails":
        trails(args[0])
    elif cmd == "moto":
        moto(args[0], args[1])
    elif cmd == "download":
        download(args[0], args[1])
    elif cmd == "classify":
        print(json.dumps(classify(args[0], int(args[1]), int(args[2]) if len(args) > 2 else 0)))
    elif cmd == "wait-ready":
        wait_ready(args[0], int(args[1]), float(args[2]))
    elif cmd == "aws-counted":
        aws_counted(args[0])
    elif cmd == "sample":
        sample(int(args[0]), float(args[1]))
    elif cmd == "report":
        json_out = None
        machine = ""
        rest = list(args[1:])
        while rest:
            flag = rest.pop(0)
            if flag == "--json":
                json_out = rest.pop(0)
            elif flag == "--machine":
                machine = rest.pop(0)
        report(args[0], json_out, machine)
    else:
        sys.exit(f"bench.py: unknown command {cmd!r} (see the docstring)")


if __name__ == "__main__":
    main(sys.argv[1:])
