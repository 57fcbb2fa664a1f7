#!/usr/bin/env python3
"""The measuring half of scripts/bench: runs certctl and certbot (and lego where it can do
the same work) on the same workloads against the lab that scripts/bench started (Pebble
behind HAProxy on loopback, BIND for DNS), alternating the tools, and prints a markdown
report of medians, ratios, peak memory and ACME request counts. It never starts or stops
the lab itself.

    bench.py network STATE.json   HTTP-01 workloads that need Pebble (issuances, renewals, counts)
    bench.py dns STATE.json       DNS-01 workloads (RFC 2136 updates to BIND; certbot's plugin)
    bench.py offline STATE.json   `renew` with nothing due (Pebble is stopped by then)
    bench.py report  STATE.json   the markdown report, from the results kept in STATE.json

STATE.json starts as the lab's description (written by scripts/bench) and collects results.
"""

import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

EMAIL = "ops@bench.test"
DOMAIN = "bench.test"
# Pebble logs one line per request: "Pebble 2026/11/26 06:44:51 POST /authZ/ -> calling handler()"
REQUEST_LINE = re.compile(rb"^Pebble \S+ \S+ (GET|HEAD|POST) (/[^ ]*) -> calling handler")
# BIND logs one line per record an UPDATE changes: "01-Dec-2026 19:21:19.437 client @0x7f..
# 127.0.0.1#51662/key NAME: updating zone 'bench.test/IN': adding an RR at ..."
UPDATE_LINE = re.compile(
    rb"^(\S+ \S+) client (@\S+ [^ :]+)[^:]*: updating zone '[^']*': (adding|deleting)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Lab:
    def __init__(self, state_path):
        self.state_path = state_path
        with open(state_path) as f:
            self.state = json.load(f)
        s = self.state
        self.quick = s["quick"]
        self.certctl_bin = s["certctl"]
        self.url = s["acme_url"]
        self.ca = s["ca"]
        self.resp = s["resp_port"]
        self.pebble_log = s["pebble_log"]
        self.work = s["work"]
        self.results = s.setdefault("results", {})
        self.clean_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CERTCTL_")
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        self.certbot_env = dict(self.clean_env, REQUESTS_CA_BUNDLE=self.ca)
        self.lego_env = dict(self.clean_env, LEGO_CA_CERTIFICATES=self.ca)
        self.named_log = s.get("named_log")

    def save(self):
        with open(self.state_path, "w") as f:
            json.dump(self.state, f, indent=1)

    # --- running the two tools -------------------------------------------------------

    def certctl(self, state_dir, *args):
        return [
            self.certctl_bin,
            "--state-dir", os.path.join(state_dir, "state"),
            "--ssl-dir", os.path.join(state_dir, "ssl"),
            *args,
        ]

    def certctl_request(self, state_dir, name, *extra):
        return self.certctl(
            state_dir, "request", name,
            "--server", self.url, "--ca-bundle", self.ca,
            "--http-addr", f"127.0.0.1:{self.resp}", "-q", *extra,
        )

    def certbot(self, config_dir, *args):
        return [
            "certbot",
            "--config-dir", os.path.join(config_dir, "conf"),
            "--work-dir", os.path.join(config_dir, "work"),
            "--logs-dir", os.path.join(config_dir, "logs"),
            "--non-interactive", "--quiet",
            *args,
        ]

    def certbot_certonly(self, config_dir, name):
        return self.certbot(
            config_dir, "certonly", "--standalone",
            "--http-01-address", "127.0.0.1", "--http-01-port", str(self.resp),
            "--server", self.url, "--agree-tos", "-m", EMAIL, "-d", name,
        )

    def certbot_renew(self, config_dir, *extra):
        # no random sleep of up to 8 minutes (certbot adds it when stdin is not a terminal)
        return self.certbot(config_dir, "renew", "--no-random-sleep-on-renew", *extra)

    def certbot_certonly_dns(self, config_dir, name, propagation):
        """certbot's RFC 2136 plugin; propagation None leaves certbot's default (60 s)."""
        wait = [] if propagation is None else [
            "--dns-rfc2136-propagation-seconds", str(propagation)]
        return self.certbot(
            config_dir, "certonly", "--dns-rfc2136",
            "--dns-rfc2136-credentials", self.state["certbot_rfc2136_ini"], *wait,
            "--server", self.url, "--agree-tos", "-m", EMAIL, "-d", name,
        )

    def certctl_request_dns(self, state_dir, name, *extra):
        s = self.state
        return self.certctl(
            state_dir, "request", name,
            "--server", self.url, "--ca-bundle", self.ca, "--challenge", "dns-01",
            "--dns-server", f"127.0.0.1:{s['bind_port']}", "--tsig-key", s["tsig_key"],
            "--dns-resolver", f"127.0.0.1:{s['bind_port']}", "-q", *extra,
        )

    def lego(self, path, name, *command):
        """lego with its own HTTP-01 server on the responder port HAProxy forwards to."""
        return [
            "lego", "--server", self.url, "--accept-tos", "--email", EMAIL, "--path", path,
            "--http", "--http.port", f"127.0.0.1:{self.resp}", "-d", name, *command,
        ]

    def lego_renew(self, path, name):
        # Pebble's certificates are valid 5 years: --days 100000 makes every one due;
        # no random sleep of up to 8 minutes before renewing
        return self.lego(path, name, "renew", "--days", "100000", "--no-random-sleep")

    def run(self, cmd, tool, memory=False, check=True):
        """Runs cmd; returns wall seconds, peak RSS (KiB, with memory=True), the ACME
        requests Pebble logged meanwhile, the DNS UPDATE messages BIND logged and the exit
        code. Unless check is False, a failure stops the benchmark, showing the tool's output."""
        env = {"certbot": self.certbot_env, "lego": self.lego_env}.get(tool, self.clean_env)
        rss_file = None
        if memory:
            fd, rss_file = tempfile.mkstemp(dir=self.work, suffix=".rss")
            os.close(fd)
            cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
        offset = self.log_size()
        dns_offset = self.log_size(self.named_log)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if check and proc.returncode != 0:
            sys.stderr.write(proc.stdout.decode(errors="replace"))
            sys.stderr.write(proc.stderr.decode(errors="replace"))
            raise SystemExit(f"bench: failed (exit {proc.returncode}): {' '.join(cmd)}")
        rss = None
        if rss_file:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1])
            os.unlink(rss_file)
        return {"wall": wall, "rss_kb": rss, "requests": self.requests_since(offset),
                "dns_updates": self.updates_since(dns_offset),
                "rc": proc.returncode, "stderr": proc.stderr.decode(errors="replace")}

    def certbot_issue(self, config_dir, name, memory=False, cmd=None):
        """certbot certonly (or `cmd`), tried again when it fails: at Pebble's 5 % nonce
        rejection, certbot (which retries a badNonce once) fails about one issuance in 50.
        Returns the successful run, with the time of the failed tries in "wall_with_failures"."""
        cmd = cmd or self.certbot_certonly(config_dir, name)
        return self.retried(cmd, "certbot", memory, os.path.join(config_dir, "logs",
                                                                 "letsencrypt.log"))

    def retried(self, cmd, tool, memory, logfile=None):
        lost = 0.0
        for attempt in range(3):
            run = self.run(cmd, tool, memory=memory, check=attempt == 2)
            if run["rc"] == 0:
                run["failures"] = attempt
                run["wall_with_failures"] = run["wall"] + lost
                return run
            lost += run["wall"]
            self.note_failure(tool, run, logfile)
        raise AssertionError("unreachable")

    def note_certbot_failure(self, run, config_dir):
        self.note_failure("certbot", run, os.path.join(config_dir, "logs", "letsencrypt.log"))

    def note_failure(self, tool, run, logfile=None):
        """Records why a peer failed: certbot's log names the CA's problem (with --quiet its
        stderr may only show a secondary AttributeError); lego's stderr does."""
        text = run["stderr"]
        if logfile:
            try:
                with open(logfile, errors="replace") as f:
                    text += f.read()[-20000:]
            except OSError:
                pass
        if "badNonce" in text:
            why = "badNonce"
        else:
            lines = run["stderr"].strip().splitlines()
            why = lines[-1] if lines else "?"
        log(f"  {tool} failed ({why}); trying again")
        key = "certbot_failures" if tool == "certbot" else f"{tool}_failures"
        self.results.setdefault(key, []).append(why)

    def log_size(self, path=None):
        try:
            return os.path.getsize(path or self.pebble_log)
        except (FileNotFoundError, TypeError):
            return 0

    def updates_since(self, offset):
        """DNS UPDATE messages BIND logged after byte `offset`: {"messages", "added",
        "deleted"}. BIND logs each record changed; the records of one message share the
        client and the millisecond."""
        messages, added, deleted = set(), 0, 0
        if not self.named_log:
            return {"messages": 0, "added": 0, "deleted": 0}
        try:
            with open(self.named_log, "rb") as f:
                f.seek(offset)
                for line in f:
                    m = UPDATE_LINE.match(line)
                    if m:
                        messages.add((m.group(1), m.group(2)))
                        if m.group(3) == b"adding":
                            added += 1
                        else:
                            deleted += 1
        except FileNotFoundError:
            pass
        return {"messages": len(messages), "added": added, "deleted": deleted}

    def requests_since(self, offset):
        """ACME requests Pebble logged after byte `offset`, by "METHOD /endpoint/"."""
        counts = collections.Counter()
        try:
            with open(self.pebble_log, "rb") as f:
                f.seek(offset)
                for line in f:
                    m = REQUEST_LINE.match(line)
                    if m:
                        counts[f"{m.group(1).decode()} {m.group(2).decode()}"] += 1
        except FileNotFoundError:
            pass
        return dict(counts)

    # --- state -------------------------------------------------------------------------

    def fresh_dir(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def copy_accounts(self, certctl_from, certctl_to, certbot_from, certbot_to):
        """The accounts registered once, copied so every workload starts registered."""
        shutil.copytree(os.path.join(certctl_from, "state", "accounts"),
                        os.path.join(certctl_to, "state", "accounts"))
        os.chmod(os.path.join(certctl_to, "state"), 0o700)
        shutil.copytree(os.path.join(certbot_from, "conf", "accounts"),
                        os.path.join(certbot_to, "conf", "accounts"))


def total_requests(counts):
    return sum(counts.values())


# Each is sent once per issuance by both tools; more means the CA rejected the nonce.
ONCE = ("POST /order-plz", "POST /chalZ/", "POST /finalize-order/", "POST /certZ/")


def nonce_retries(counts):
    return sum(max(0, counts.get(k, 0) - 1) for k in ONCE)


# --- phase 1: everything that needs the CA -------------------------------------------------


def network(lab):
    r = lab.results
    quick = lab.quick
    single_reps = 3 if quick else 9
    batch = 10 if quick else 100
    # lego takes about 6 s per issuance here: --quick gives it a few names only
    lego_batch = 3 if quick else batch
    r["params"] = {"single_reps": single_reps, "batch": batch, "lego_batch": lego_batch}
    r["load_start"] = os.getloadavg()[0]

    # 0. accounts, registered once; a first issuance each (not measured) warms caches
    cc_one = lab.fresh_dir("certctl-one")
    cb_one = lab.fresh_dir("certbot-one")
    log("registering the accounts; one unmeasured issuance each")
    lab.run(lab.certctl_request(cc_one, f"warm.{DOMAIN}", "--agree-tos", "--email", EMAIL),
            "certctl")
    lab.run(lab.certbot(cb_one, "register", "--server", lab.url, "--agree-tos", "-m", EMAIL,
                        "--no-eff-email"), "certbot")
    lab.certbot_issue(cb_one, f"warm.{DOMAIN}")
    lego_dir = lab.fresh_dir("lego-batch")
    lab.retried(lab.lego(lego_dir, f"warm.{DOMAIN}", "run"), "lego", False)

    # 1. one issuance with the account registered, alternating
    log(f"one issuance, {single_reps} runs each, alternating")
    single = {"certctl": [], "certbot": []}
    for i in range(single_reps):
        single["certctl"].append(
            strip(lab.run(lab.certctl_request(cc_one, f"one-{i}.{DOMAIN}"), "certctl",
                          memory=True)))
        single["certbot"].append(
            strip(lab.certbot_issue(cb_one, f"one-{i}.{DOMAIN}", memory=True)))
    r["single"] = single

    # 2. N certificates: `request` per name in a loop, then `renew --force` over them
    log(f"{batch} certificates: one request per name in a loop, certctl, certbot, then lego "
        f"({lego_batch} names; its account registered by one unmeasured `run`)")
    cc_batch = lab.fresh_dir("certctl-batch")
    cb_batch = lab.fresh_dir("certbot-batch")
    lab.copy_accounts(cc_one, cc_batch, cb_one, cb_batch)
    names = [f"b{i}.{DOMAIN}" for i in range(batch)]
    issue = {
        "certctl": lambda name: lab.run(lab.certctl_request(cc_batch, name), "certctl"),
        "certbot": lambda name: lab.certbot_issue(cb_batch, name),
        "lego": lambda name: lab.retried(lab.lego(lego_dir, name, "run"), "lego", True),
    }
    loop = {}
    for tool in ("certctl", "certbot", "lego"):
        runs = []
        start = time.perf_counter()
        for name in names[:lego_batch] if tool == "lego" else names:
            runs.append(issue[tool](name))
        loop[tool] = {"wall": time.perf_counter() - start, "count": len(runs),
                      "requests": sum_counts(x["requests"] for x in runs)}
        if tool == "lego":
            loop[tool]["rss_kb"] = max(x["rss_kb"] for x in runs)
        log(f"  {tool}: {loop[tool]['wall']:.2f} s")
    r["loop"] = loop

    log(f"{batch} certificates: renew --force, certctl then certbot")
    renew = {}
    renew["certctl"] = strip(lab.run(lab.certctl(cc_batch, "renew", "--force", "-q"), "certctl",
                                     memory=True))
    log(f"  certctl: {renew['certctl']['wall']:.2f} s")
    renew["certbot"] = certbot_renew_all(lab, cb_batch)
    log(f"  certbot: {renew['certbot']['wall']:.2f} s")
    # one order at a time: every nonce after the first comes from the CA's answers
    renew["certctl_jobs1"] = strip(lab.run(
        lab.certctl(cc_batch, "renew", "--force", "--jobs", "1", "-q"), "certctl", memory=True))
    log(f"  certctl --jobs 1: {renew['certctl_jobs1']['wall']:.2f} s")
    # lego has no renew-all: `lego renew` per certificate, in a loop, as a cron job would
    runs = []
    start = time.perf_counter()
    for name in names[:lego_batch]:
        runs.append(lab.retried(lab.lego_renew(lego_dir, name), "lego", True))
    renew["lego"] = {"wall": time.perf_counter() - start, "count": len(runs),
                     "rss_kb": max(x["rss_kb"] for x in runs),
                     "requests": sum_counts(x["requests"] for x in runs)}
    log(f"  lego, renew per certificate in a loop: {renew['lego']['wall']:.2f} s")
    r["renew"] = renew

    # 3. stored state for `renew` with nothing due: the real certificates just renewed,
    #    cloned under new names (hard links; settings.json names the new name)
    sizes = [10, 100, 1000] if quick else [10, 100, 1000, 10000]
    log(f"stored state for renew with nothing due: {', '.join(map(str, sizes))} certificates")
    templates = sorted(os.listdir(os.path.join(cc_batch, "state", "certs")))
    noop_dirs = {}
    for size in sizes:
        d = lab.fresh_dir(f"certctl-noop-{size}")
        clone_state(cc_batch, d, templates, size)
        noop_dirs[str(size)] = d
    r["noop_dirs"] = noop_dirs
    r["certbot_noop_dir"] = cb_batch
    r["certbot_noop_lineages"] = batch

    # 4. with Pebble still up: certctl decides every stored certificate is not due and sends
    #    nothing (Pebble's log does not grow; no connect() at all when strace is there)
    biggest = str(sizes[-1])
    check = lab.run(lab.certctl(noop_dirs[biggest], "renew", "-v"), "certctl")
    not_due = check["stderr"].count(": not due;")
    if not_due != sizes[-1]:
        raise SystemExit(f"bench: renew -v saw {not_due} certificates not due, "
                         f"expected {sizes[-1]}:\n{check['stderr'][-2000:]}")
    connects = None
    if shutil.which("strace"):
        trace = os.path.join(lab.work, "noop.strace")
        lab.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", trace,
                 *lab.certctl(noop_dirs[biggest], "renew", "-q")], "certctl")
        with open(trace) as f:
            connects = sum(1 for line in f if "AF_INET" in line)
    r["noop_check"] = {"size": sizes[-1], "not_due": not_due,
                       "requests": total_requests(check["requests"]), "inet_syscalls": connects}
    log(f"  {sizes[-1]} certificates: {not_due} not due, "
        f"{total_requests(check['requests'])} requests in Pebble's log, "
        f"{connects} connect/send syscalls to an IP address")


# --- DNS-01: RFC 2136 updates to BIND, which Pebble asks ----------------------------------


def dns(lab):
    """One DNS-01 issuance and N certificates renewed in one run, certctl (RFC 2136 with a
    TSIG key, then asking the zone's nameservers until they serve the records) against
    certbot's dns-rfc2136 plugin (which sleeps a fixed time instead: its default 60 s, and
    0 s, the lowest value, which works here because BIND applies an UPDATE before answering)."""
    r = lab.results
    quick = lab.quick
    reps = 3 if quick else 9
    default_reps = 0 if quick else 3
    batch = 5 if quick else 20
    low = 0
    r["dns_params"] = {"reps": reps, "default_reps": default_reps, "batch": batch,
                       "low_propagation": low}
    work = lab.work
    cc_dns = lab.fresh_dir("certctl-dns")
    cb_dns = lab.fresh_dir("certbot-dns")
    lab.copy_accounts(os.path.join(work, "certctl-one"), cc_dns,
                      os.path.join(work, "certbot-one"), cb_dns)
    log("DNS-01: one unmeasured issuance each")
    lab.run(lab.certctl_request_dns(cc_dns, f"dns-warm.{DOMAIN}"), "certctl")
    lab.certbot_issue(cb_dns, None, cmd=lab.certbot_certonly_dns(cb_dns, f"dns-warm.{DOMAIN}", low))

    log(f"DNS-01, one issuance: {reps} runs each, alternating (certbot --dns-rfc2136-"
        f"propagation-seconds {low}); then certbot's default 60 s, {default_reps} runs")
    single = {"certctl": [], "certbot": [], "certbot_default": []}
    for i in range(reps):
        single["certctl"].append(strip(lab.run(
            lab.certctl_request_dns(cc_dns, f"dns-{i}.{DOMAIN}"), "certctl", memory=True)))
        name = f"dns-{i}.{DOMAIN}"
        single["certbot"].append(strip(lab.certbot_issue(
            cb_dns, None, memory=True, cmd=lab.certbot_certonly_dns(cb_dns, name, low))))
    for i in range(default_reps):
        single["certctl"].append(strip(lab.run(
            lab.certctl_request_dns(cc_dns, f"dns-d{i}.{DOMAIN}"), "certctl", memory=True)))
        name = f"dns-d{i}.{DOMAIN}"
        single["certbot_default"].append(strip(lab.certbot_issue(
            cb_dns, None, memory=True, cmd=lab.certbot_certonly_dns(cb_dns, name, None))))
    r["dns_single"] = single
    log(f"  certctl {med(single['certctl']) * 1000:.0f} ms, certbot {med(single['certbot']):.2f} s"
        + (f", certbot default {med(single['certbot_default']):.1f} s"
           if single["certbot_default"] else ""))

    log(f"DNS-01, {batch} certificates: `request` per name in a loop, then one renew --force "
        f"(certbot: certonly per name, then renew --force-renewal), certctl then certbot")
    cc_batch = lab.fresh_dir("certctl-dns-batch")
    cb_batch = lab.fresh_dir("certbot-dns-batch")
    lab.copy_accounts(cc_dns, cc_batch, cb_dns, cb_batch)
    names = [f"db{i}.{DOMAIN}" for i in range(batch)]
    loop = {}
    for tool in ("certctl", "certbot"):
        runs = []
        start = time.perf_counter()
        for name in names:
            runs.append(
                lab.run(lab.certctl_request_dns(cc_batch, name), "certctl") if tool == "certctl"
                else lab.certbot_issue(cb_batch, None,
                                       cmd=lab.certbot_certonly_dns(cb_batch, name, low)))
        loop[tool] = {"wall": time.perf_counter() - start,
                      "requests": sum_counts(x["requests"] for x in runs),
                      "dns_updates": sum_counts(x["dns_updates"] for x in runs)}
        log(f"  {tool}: {loop[tool]['wall']:.2f} s")
    r["dns_loop"] = loop
    renew = {}
    renew["certctl"] = strip(lab.run(lab.certctl(cc_batch, "renew", "--force", "-q"), "certctl",
                                     memory=True))
    log(f"  certctl renew --force: {renew['certctl']['wall']:.2f} s")
    renew["certbot"] = certbot_renew_all(lab, cb_batch)
    log(f"  certbot renew --force-renewal: {renew['certbot']['wall']:.2f} s")
    r["dns_renew"] = renew
    # where certctl's time goes: one issuance and the renewal again, each -vv line with the
    # time it was written (kept in results.json; KEEP=1 keeps the file)
    r["dns_trace"] = {
        "request": timed_lines(lab, lab.certctl_request_dns(cc_dns, f"dns-trace.{DOMAIN}", "-vv")),
        "renew": timed_lines(lab, lab.certctl(cc_batch, "renew", "--force", "-vv")),
    }
    # every tool removed its records: the zone holds no TXT record at the end
    zone = subprocess.run(
        ["dig", "-p", str(lab.state["bind_port"]), "@127.0.0.1", "AXFR", DOMAIN],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    r["dns_leftover_txt"] = len(re.findall(r"\sTXT\s", zone)) if "SOA" in zone else None


def timed_lines(lab, cmd):
    """Runs certctl, noting when each line of its stderr arrived: ["12.3 ms line", ...]."""
    cmd = [c for c in cmd if c != "-q"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=lab.clean_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = [f"{(time.perf_counter() - start) * 1000:8.1f} ms {line.decode(errors='replace').rstrip()}"
             for line in proc.stderr]
    rc = proc.wait()
    lines.append(f"{(time.perf_counter() - start) * 1000:8.1f} ms exit {rc}")
    return lines


def certbot_renew_all(lab, config_dir):
    """certbot renew --force-renewal; the lineages it failed to renew (a badNonce twice in a
    row) are renewed again one by one, their time added, so the workload is complete."""
    run = lab.run(lab.certbot_renew(config_dir, "--force-renewal"), "certbot", memory=True,
                  check=False)
    result = strip(run)
    result["failures"] = 0
    if run["rc"] != 0:
        failed = re.findall(r"/live/([^/\s]+)/fullchain\.pem \(failure\)", run["stderr"])
        if not failed:
            sys.stderr.write(run["stderr"])
            raise SystemExit("bench: certbot renew failed")
        for name in failed:
            lab.note_certbot_failure(run, config_dir)
            again = lab.run(lab.certbot_renew(config_dir, "--force-renewal", "--cert-name", name),
                            "certbot")
            result["wall"] += again["wall"]
            result["requests"] = sum_counts([result["requests"], again["requests"]])
        result["failures"] = len(failed)
    return result


def strip(run):
    run = dict(run)
    run.pop("stderr", None)
    return run


def sum_counts(counts):
    total = collections.Counter()
    for c in counts:
        total.update(c)
    return dict(total)


def clone_state(source, dest, templates, size):
    """`size` stored certificates under new names (the names of their directories and
    bundles), each a hard-linked copy of one of the real `templates` (valid for years, so not
    due), with its settings.json naming this state's ssl dir."""
    src_certs = os.path.join(source, "state", "certs")
    dst_state = os.path.join(dest, "state")
    dst_certs = os.path.join(dst_state, "certs")
    ssl = os.path.join(dest, "ssl")
    os.makedirs(dst_certs)
    os.makedirs(ssl)
    os.chmod(dst_state, 0o700)
    os.chmod(ssl, 0o700)
    shutil.copytree(os.path.join(source, "state", "accounts"),
                    os.path.join(dst_state, "accounts"))
    for i in range(size):
        template = templates[i % len(templates)]
        name = f"n{i}.{DOMAIN}"
        src = os.path.join(src_certs, template)
        dst = os.path.join(dst_certs, name)
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link,
                        ignore=shutil.ignore_patterns("settings.json"))
        with open(os.path.join(src, "settings.json")) as f:
            settings = json.load(f)
        # the template's names stay (renew reorders a certificate that does not name what
        # its settings ask for); the bundle goes to this state's own ssl dir
        if "ssl_dir" in settings:
            settings["ssl_dir"] = ssl
        with open(os.path.join(dst, "settings.json"), "w") as f:
            json.dump(settings, f)
        os.link(os.path.join(source, "ssl", f"{template}.pem"), os.path.join(ssl, f"{name}.pem"))


# --- phase 2: Pebble stopped ------------------------------------------------------------------


def offline(lab):
    r = lab.results
    reps = 5 if lab.quick else 15
    sizes = sorted(r["noop_dirs"], key=int)
    log(f"renew with nothing due, Pebble stopped: {reps} runs per size, alternating with certbot "
        f"over {r['certbot_noop_lineages']} lineages")
    noop = {s: [] for s in sizes}
    certbot = []
    for _ in range(reps):
        for s in sizes:
            noop[s].append(strip(lab.run(lab.certctl(r["noop_dirs"][s], "renew", "-q"),
                                         "certctl")))
        certbot.append(strip(lab.run(lab.certbot_renew(r["certbot_noop_dir"]), "certbot")))
    biggest = sizes[-1]
    memory = strip(lab.run(lab.certctl(r["noop_dirs"][biggest], "renew", "-q"), "certctl",
                           memory=True))
    r["noop"] = {"certctl": noop, "certbot": certbot, "reps": reps,
                 "rss_biggest_kb": memory["rss_kb"]}
    r["load_end"] = os.getloadavg()[0]
    for s in sizes:
        log(f"  certctl {s}: {med(noop[s]) * 1000:.1f} ms")
    log(f"  certbot {r['certbot_noop_lineages']}: {med(certbot) * 1000:.0f} ms")


# --- the report ---------------------------------------------------------------------------------


def med(runs, key="wall"):
    return statistics.median(x[key] for x in runs)


def secs(s):
    if s < 0.1:
        return f"{s * 1000:.1f} ms"
    if s < 10:
        return f"{s:.2f} s"
    return f"{s:.1f} s"


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def ratio(a, b):
    return f"{a / b:.0f}x" if b else "-"


def verdict(ok):
    return "met" if ok else "**missed**"


PROTOCOL_MINIMUM = 9  # dir, nonce, newOrder, authz, challenge, 1 poll, finalize, 1 poll, cert


def report(lab):
    r = lab.results
    s = lab.state
    n = r["params"]["batch"]
    reps = r["params"]["single_reps"]
    single = r["single"]
    cc1, cb1 = med(single["certctl"]), med(single["certbot"])
    cc_rss1 = med(single["certctl"], "rss_kb")
    cb_rss1 = med(single["certbot"], "rss_kb")
    req_cc = [total_requests(x["requests"]) for x in single["certctl"]]
    req_cb = [total_requests(x["requests"]) for x in single["certbot"]]
    own_cc = [total_requests(x["requests"]) - nonce_retries(x["requests"]) for x in single["certctl"]]
    own_cb = [total_requests(x["requests"]) - nonce_retries(x["requests"]) for x in single["certbot"]]
    loop, renew = r["loop"], r["renew"]
    both_cc = loop["certctl"]["wall"] + renew["certctl"]["wall"]
    both_cb = loop["certbot"]["wall"] + renew["certbot"]["wall"]
    noop = r["noop"]
    sizes = sorted(noop["certctl"], key=int)
    noop_cb = med(noop["certbot"])
    noop_1000 = med(noop["certctl"]["1000"]) if "1000" in noop["certctl"] else None

    out = []
    w = out.append
    w(f"Machine: {s['machine']}. {s['certctl_version']}, {s['certbot_version']}, "
      f"{s.get('lego_version', 'lego ?')}, {s['pebble']}, {s['haproxy_version']}, "
      f"{s.get('bind_version', 'BIND ?')}.")
    w(f"Lab: Pebble with PEBBLE_VA_NOSLEEP=1, PEBBLE_AUTHZREUSE=0, PEBBLE_WFE_NONCEREJECT=5 "
      f"(Pebble's default), HTTP-01 through HAProxy; both tools answer on the same responder "
      f"port; runs alternate between the tools. Load average (1 min) before and after: "
      f"{r['load_start']:.2f}, {r['load_end']:.2f}.")
    w("")
    w("| workload | certctl | certbot | certbot / certctl | target |")
    w("| --- | --- | --- | --- | --- |")
    w(f"| one issuance, account registered (median of {reps}) | {secs(cc1)} | {secs(cb1)} | "
      f"{ratio(cb1, cc1)} | ≥10x: {verdict(cb1 / cc1 >= 10)} |")
    w(f"| {n} certificates, `request` per name in a loop (total) | {secs(loop['certctl']['wall'])} "
      f"| {secs(loop['certbot']['wall'])} | {ratio(loop['certbot']['wall'], loop['certctl']['wall'])}"
      f" | ≥50x: {verdict(loop['certbot']['wall'] / loop['certctl']['wall'] >= 50)} |")
    w(f"| {n} certificates, `renew --force` (certbot: `renew --force-renewal`) | "
      f"{secs(renew['certctl']['wall'])} | {secs(renew['certbot']['wall'])} | "
      f"{ratio(renew['certbot']['wall'], renew['certctl']['wall'])} | "
      f"≥50x: {verdict(renew['certbot']['wall'] / renew['certctl']['wall'] >= 50)} |")
    w(f"| {n} certificates, both workloads | {secs(both_cc)} | {secs(both_cb)} | "
      f"{ratio(both_cb, both_cc)} | ≥50x: {verdict(both_cb / both_cc >= 50)} |")
    for size in sizes:
        t = med(noop["certctl"][size])
        target = ""
        if size == "1000":
            target = f"<50 ms, 0 requests: {verdict(t < 0.05)}"
        w(f"| `renew`, nothing due, {int(size):,} certificates (median of {noop['reps']}, "
          f"Pebble stopped) | {secs(t)} | | | {target} |")
    same = noop["certctl"].get(str(r["certbot_noop_lineages"]))
    w(f"| `renew`, nothing due, {r['certbot_noop_lineages']} certificates / lineages (median of "
      f"{noop['reps']}, Pebble stopped) | {secs(med(same)) if same else '-'} | {secs(noop_cb)} | "
      f"{ratio(noop_cb, med(same)) if same else '-'} | |")
    w(f"| peak memory (max RSS), one issuance (median) | {mib(cc_rss1)} | {mib(cb_rss1)} | "
      f"{ratio(cb_rss1, cc_rss1)} | <12 MB: {verdict(cc_rss1 * 1024 < 12e6)} |")
    w(f"| peak memory, `renew --force` over {n} | {mib(renew['certctl']['rss_kb'])} | "
      f"{mib(renew['certbot']['rss_kb'])} | {ratio(renew['certbot']['rss_kb'], renew['certctl']['rss_kb'])}"
      f" | <12 MB: {verdict(renew['certctl']['rss_kb'] * 1024 < 12e6)} |")
    w(f"| ACME requests per issuance (median; min-max of {reps}) | "
      f"{statistics.median(req_cc):g} ({min(req_cc)}-{max(req_cc)}) | "
      f"{statistics.median(req_cb):g} ({min(req_cb)}-{max(req_cb)}) | | |")
    w(f"| the same without the requests sent again after a rejected nonce | "
      f"{statistics.median(own_cc):g} ({min(own_cc)}-{max(own_cc)}) | "
      f"{statistics.median(own_cb):g} ({min(own_cb)}-{max(own_cb)}) | | protocol minimum "
      f"{PROTOCOL_MINIMUM}: {verdict(statistics.median(own_cc) <= PROTOCOL_MINIMUM)} |")
    lc, lb = total_requests(loop["certctl"]["requests"]), total_requests(loop["certbot"]["requests"])
    w(f"| ACME requests, {n} `request` in a loop (all; per certificate) | {lc}; {lc / n:.1f} | "
      f"{lb}; {lb / n:.1f} | | |")
    for key, label in (("certctl", f"`renew --force` over {n}"),
                       ("certctl_jobs1", f"`renew --force --jobs 1` over {n}")):
        c = renew[key]["requests"]
        dirs, nonces = c.get("GET /dir", 0), c.get("HEAD /nonce-plz", 0)
        target = f"directory and first nonce once: {verdict(dirs == 1 and nonces == 1)}"
        if dirs == 1 and nonces > 1:
            target += " (directory once; a first nonce per concurrent order)"
        w(f"| {label}: GET /dir, HEAD newNonce, all requests | {dirs}, {nonces}, "
          f"{total_requests(c)} ({total_requests(c) / n:.1f} per certificate) | | | {target} |")
    c = renew["certbot"]["requests"]
    w(f"| certbot `renew --force-renewal` over {n}: GET /dir, HEAD newNonce, all requests | | "
      f"{c.get('GET /dir', 0)}, {c.get('HEAD /nonce-plz', 0)}, {total_requests(c)} "
      f"({total_requests(c) / n:.1f} per certificate) | | |")
    w("")

    w("`renew` with nothing due, by number of stored certificates (certctl, Pebble stopped):")
    w("")
    w("| certificates | median wall | wall / certificates | added per certificate | max RSS |")
    w("| --- | --- | --- | --- | --- |")
    previous = None
    for size in sizes:
        t = med(noop["certctl"][size])
        rss = mib(noop["rss_biggest_kb"]) if size == sizes[-1] else ""
        added = ""
        if previous:
            added = f"{(t - previous[1]) / (int(size) - previous[0]) * 1e6:.1f} µs"
        w(f"| {int(size):,} | {secs(t)} | {t / int(size) * 1e6:.1f} µs | {added} | {rss} |")
        previous = (int(size), t)
    chk = r["noop_check"]
    syscalls = ("not checked (no strace)" if chk["inet_syscalls"] is None
                else f"{chk['inet_syscalls']} connect/send syscalls to an IP address (strace)")
    w("")
    w(f"Zero network: with Pebble still running, `renew -v` over {chk['size']:,} certificates "
      f"printed {chk['not_due']:,} \"not due\" lines, Pebble logged {chk['requests']} requests, "
      f"{syscalls}; every timed run above had Pebble stopped and exited 0.")
    w("")

    w("ACME requests of one issuance (the median certctl run and the median certbot run):")
    w("")
    pick_cc = sorted(single["certctl"], key=lambda x: total_requests(x["requests"]))[len(req_cc) // 2]
    pick_cb = sorted(single["certbot"], key=lambda x: total_requests(x["requests"]))[len(req_cb) // 2]
    endpoints = sorted(set(pick_cc["requests"]) | set(pick_cb["requests"]), key=endpoint_order)
    w("| request | certctl | certbot |")
    w("| --- | --- | --- |")
    for e in endpoints:
        w(f"| {e} | {pick_cc['requests'].get(e, 0)} | {pick_cb['requests'].get(e, 0)} |")
    w(f"| total | {total_requests(pick_cc['requests'])} | {total_requests(pick_cb['requests'])} |")
    peers_report(r, w)
    dns_report(r, s, w)
    fails = r.get("certbot_failures", [])
    if fails:
        w("")
        w(f"certbot failed {len(fails)} time(s) ({', '.join(sorted(set(fails)))}): it retries a "
          f"badNonce once, and at Pebble's 5 % nonce rejection two in a row happen; each failed "
          f"run was repeated and its time counted in the totals above (not in the medians of "
          f"one issuance).")
    text = "\n".join(out) + "\n"
    print(text, end="")
    lab.results["report"] = text


def per_cert(run):
    return run["wall"] / run["count"]


def peers_report(r, w):
    """The 100-certificate workloads with lego beside certbot."""
    n = r["params"]["batch"]
    loop, renew = r["loop"], r["renew"]
    if "lego" not in loop:
        return
    ln = loop["lego"]["count"]

    def lego_cell(run):
        if run["count"] == n:
            return secs(run["wall"])
        return f"{secs(run['wall'])} for {run['count']} ({secs(per_cert(run))} each)"

    def lego_ratio(run, cc):
        return ratio(per_cert(run), cc / n)

    w("")
    w(f"The {n}-certificate workloads with lego beside certbot (lego: its own HTTP-01 server "
      f"on the responder port; `lego run` per name, then `lego renew --days 100000 "
      f"--no-random-sleep` per name in a loop, since it has no renew-all"
      + (f"; {ln} names only in --quick" if ln != n else "") + "):")
    w("")
    w("| workload | certctl | certbot | lego | certbot / certctl | lego / certctl |")
    w("| --- | --- | --- | --- | --- | --- |")
    cc, cb, lg = loop["certctl"]["wall"], loop["certbot"]["wall"], loop["lego"]
    w(f"| {n} certificates, `request` per name in a loop (total) | {secs(cc)} | {secs(cb)} | "
      f"{lego_cell(lg)} | {ratio(cb, cc)} | {lego_ratio(lg, cc)} |")
    rc, rb, rl = renew["certctl"]["wall"], renew["certbot"]["wall"], renew["lego"]
    w(f"| {n} certificates renewed (certctl `renew --force`, certbot `renew --force-renewal`, "
      f"lego `renew` per name) | {secs(rc)} | {secs(rb)} | {lego_cell(rl)} | {ratio(rb, rc)} | "
      f"{lego_ratio(rl, rc)} |")
    both_l = {"wall": lg["wall"] + rl["wall"], "count": ln}
    w(f"| both workloads | {secs(cc + rc)} | {secs(cb + rb)} | {lego_cell(both_l)} | "
      f"{ratio(cb + rb, cc + rc)} | {lego_ratio(both_l, cc + rc)} |")
    for label, runs in (("the loop", loop), ("the renewal", renew)):
        cells = [f"{total_requests(runs[t]['requests']) / runs[t].get('count', n):.1f}"
                 for t in ("certctl", "certbot", "lego")]
        w(f"| ACME requests per certificate, {label} | {' | '.join(cells)} | | |")
    w(f"| peak memory, the renewal (lego: the largest of its processes) | "
      f"{mib(renew['certctl']['rss_kb'])} | {mib(renew['certbot']['rss_kb'])} | "
      f"{mib(rl['rss_kb'])} | | |")
    fails = r.get("lego_failures", [])
    if fails:
        w("")
        w(f"lego failed {len(fails)} time(s) ({', '.join(sorted(set(fails)))}); each failed run "
          f"was repeated and its time counted.")


def dns_report(r, s, w):
    """DNS-01: certctl's RFC 2136 provider against certbot's dns-rfc2136 plugin."""
    if "dns_single" not in r:
        return
    p = r["dns_params"]
    single, loop, renew = r["dns_single"], r["dns_loop"], r["dns_renew"]
    n, low = p["batch"], p["low_propagation"]
    cc = med(single["certctl"])
    cb = med(single["certbot"])
    w("")
    w(f"DNS-01 ({s.get('bind_version', 'BIND')}, zone bench.test on loopback; Pebble validates "
      f"by asking it, no VA_ALWAYS_VALID): certctl `request NAME --challenge dns-01 --dns-server "
      f"127.0.0.1:PORT --tsig-key KEY --dns-resolver 127.0.0.1:PORT` (RFC 2136 with TSIG, then "
      f"asks the zone's nameservers until they serve the value) against certbot `certonly "
      f"--dns-rfc2136 --dns-rfc2136-credentials FILE` (same server and key; it sleeps "
      f"`--dns-rfc2136-propagation-seconds` instead of checking: 60 s by default, {low} s the "
      f"lowest value, which works here because BIND applies an UPDATE before answering it). "
      f"Runs alternate between the tools.")
    w("")
    w("| workload | certctl | certbot | certbot / certctl | target |")
    w("| --- | --- | --- | --- | --- |")
    w(f"| one DNS-01 issuance, certbot with `--dns-rfc2136-propagation-seconds {low}` (the lowest "
      f"value; median of {len(single['certbot'])}; certctl median of {len(single['certctl'])}) | "
      f"{secs(cc)} | {secs(cb)} | {ratio(cb, cc)} | ≥20x: {verdict(cb / cc >= 20)} |")
    if single["certbot_default"]:
        cd = med(single["certbot_default"])
        w(f"| one DNS-01 issuance, certbot with its default 60 s (median of "
          f"{len(single['certbot_default'])}) | {secs(cc)} | {secs(cd)} | {ratio(cd, cc)} | "
          f"≥20x: {verdict(cd / cc >= 20)} |")
    else:
        w(f"| one DNS-01 issuance, certbot with its default 60 s | {secs(cc)} | not measured "
          f"(--quick): {secs(cb)} + 60 s | {ratio(cb + 60, cc)} | |")
    lc, lb = loop["certctl"]["wall"], loop["certbot"]["wall"]
    w(f"| {n} certificates, `request` per name in a loop (total; certbot at {low} s) | "
      f"{secs(lc)} | {secs(lb)} | {ratio(lb, lc)} | |")
    rc, rb = renew["certctl"]["wall"], renew["certbot"]["wall"]
    w(f"| {n} certificates, one `renew --force` (certbot: `renew --force-renewal`, {low} s "
      f"stored in each lineage) | {secs(rc)} | {secs(rb)} | {ratio(rb, rc)} | "
      f"<3 s: {verdict(rc < 3)} |")
    if single["certbot_default"]:
        w(f"| the same renewal with certbot's default 60 s (not run: {n} sleeps of 60 s added) | "
          f"{secs(rc)} | about {secs(rb + 60 * n)} | {ratio(rb + 60 * n, rc)} | |")
    w(f"| peak memory (max RSS), one issuance (median) | {mib(med(single['certctl'], 'rss_kb'))} "
      f"| {mib(med(single['certbot'], 'rss_kb'))} | | |")
    w(f"| peak memory, `renew --force` over {n} | {mib(renew['certctl']['rss_kb'])} | "
      f"{mib(renew['certbot']['rss_kb'])} | | |")
    req_cc = [total_requests(x["requests"]) for x in single["certctl"]]
    req_cb = [total_requests(x["requests"]) for x in single["certbot"]]
    w(f"| ACME requests per issuance (median; min-max) | {statistics.median(req_cc):g} "
      f"({min(req_cc)}-{max(req_cc)}) | {statistics.median(req_cb):g} "
      f"({min(req_cb)}-{max(req_cb)}) | | |")
    for label, a, b in ((f"ACME requests, {n} renewed in one run (per certificate)",
                         renew["certctl"]["requests"], renew["certbot"]["requests"]),):
        w(f"| {label} | {total_requests(a)} ({total_requests(a) / n:.1f}) | {total_requests(b)} "
          f"({total_requests(b) / n:.1f}) | | |")

    def updates(u):
        return f"{u['messages']} ({u['added']} added, {u['deleted']} removed)"

    pick_cc = sorted(single["certctl"], key=lambda x: x["dns_updates"]["messages"])[
        len(single["certctl"]) // 2]
    pick_cb = sorted(single["certbot"], key=lambda x: x["dns_updates"]["messages"])[
        len(single["certbot"]) // 2]
    w(f"| DNS UPDATE messages (records added, removed), one issuance | "
      f"{updates(pick_cc['dns_updates'])} | "
      f"{updates(pick_cb['dns_updates'])} | | |")
    w(f"| DNS UPDATE messages (records added, removed), {n} renewed in one run (messages "
      f"counted from BIND's log by client and millisecond: at most) | "
      f"{updates(renew['certctl']['dns_updates'])} | {updates(renew['certbot']['dns_updates'])} "
      f"| | |")
    left = r.get("dns_leftover_txt")
    w(f"| TXT records left in the zone at the end (both tools) | "
      f"{'not checked' if left is None else left} | | | none |")


def endpoint_order(e):
    order = ["GET /dir", "HEAD /nonce-plz", "POST /order-plz", "POST /authZ/", "POST /chalZ/",
             "POST /my-order/", "POST /finalize-order/", "POST /certZ/"]
    return (order.index(e) if e in order else len(order), e)


def main():
    phases = {"network": network, "dns": dns, "offline": offline, "report": report}
    if len(sys.argv) != 3 or sys.argv[1] not in phases:
        raise SystemExit(__doc__)
    lab = Lab(sys.argv[2])
    try:
        phases[sys.argv[1]](lab)
    finally:
        lab.save()


if __name__ == "__main__":
    main()
