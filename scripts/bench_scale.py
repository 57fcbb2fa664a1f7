"""scripts/bench-scale's work (issue 19): see that script. Local CA only, no network."""

import json
import os
import random
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time

CERTCTL = os.environ["CERTCTL"]
LAB = os.environ["LAB"]
QUICK = "--quick" in sys.argv
DOMAIN = "scale.test"
CONFIG = os.path.join(LAB, "empty.toml")
LAST_CPU = [0.0]  # user + system seconds of the last run (wall time suffers from load)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def certctl(state, ssl_dir, args, check=True, stdout=subprocess.DEVNULL):
    """One run; returns (wall seconds, max RSS KiB, exit code)."""
    rss = os.path.join(LAB, "time.out")
    cmd = ["/usr/bin/time", "-f", "%M %U %S", "-o", rss, CERTCTL, "--config", CONFIG,
           "--state-dir", state, "--ssl-dir", ssl_dir, "--server", "local", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTCTL")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stderr.decode()[-2000:]}")
    with open(rss) as f:
        kib = f.read().strip().splitlines()[-1].split()[0]
    return wall, int(kib), proc.returncode


def fmt_t(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def median_runs(n, fn):
    runs = [fn() for _ in range(n)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


# --- renew with nothing due, list --json -------------------------------------------------


def templates(root, count=4):
    state, ssl_dir = os.path.join(root, "state"), os.path.join(root, "ssl")
    os.makedirs(ssl_dir, mode=0o700)
    names = [f"t{i}.{DOMAIN}" for i in range(count)]
    for name in names:
        certctl(state, ssl_dir, ["request", name, "--days", "700"])
    return state, ssl_dir, names


def clone(tpl_state, tpl_ssl, names, dest, size):
    """`size` certificates, hard-linked copies of the templates under new names."""
    state, ssl_dir = os.path.join(dest, "state"), os.path.join(dest, "ssl")
    os.makedirs(os.path.join(state, "certs"))
    os.makedirs(ssl_dir)
    os.chmod(state, 0o700)
    os.chmod(ssl_dir, 0o700)
    for sub in ("ca", "accounts"):
        if os.path.isdir(os.path.join(tpl_state, sub)):
            shutil.copytree(os.path.join(tpl_state, sub), os.path.join(state, sub))
    for i in range(size):
        t = names[i % len(names)]
        name = f"n{i}.{DOMAIN}"
        src, dst = os.path.join(tpl_state, "certs", t), os.path.join(state, "certs", name)
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link,
                        ignore=shutil.ignore_patterns("settings.json"))
        # the same certificate under another name; its bundle in this lab's ssl directory
        with open(os.path.join(src, "settings.json")) as f:
            settings = json.load(f)
        settings["ssl_dir"] = ssl_dir
        with open(os.path.join(dst, "settings.json"), "w") as f:
            json.dump(settings, f)
        os.chmod(os.path.join(dst, "settings.json"), 0o600)
        os.link(os.path.join(tpl_ssl, f"{t}.pem"), os.path.join(ssl_dir, f"{name}.pem"))
    return state, ssl_dir


def noop(results):
    sizes = [1000, 10000] if QUICK else [10000, 100000]
    reps = 5 if QUICK else 15
    tpl_state, tpl_ssl, names = templates(os.path.join(LAB, "tpl"))
    rows = []
    for size in sizes:
        log(f"cloning {size} certificates")
        state, ssl_dir = clone(tpl_state, tpl_ssl, names, os.path.join(LAB, f"noop{size}"), size)
        index = os.path.join(state, "renew-index")
        time.sleep(0.2)  # the index trusts only versions older than 100 ms (same clock tick)
        cold = certctl(state, ssl_dir, ["renew"])
        warm, warm_rss = median_runs(reps, lambda: certctl(state, ssl_dir, ["renew"]))
        cpu = []
        for _ in range(reps):
            certctl(state, ssl_dir, ["renew"])
            cpu.append(LAST_CPU[0])
        full, full_rss = median_runs(max(3, reps // 3), lambda: certctl(
            state, ssl_dir, ["renew", "-v"]))

        def no_index():
            os.remove(index)
            return certctl(state, ssl_dir, ["renew"])
        rebuild, _ = median_runs(max(3, reps // 3), no_index)
        row = {"size": size, "cold": cold[0], "warm": warm, "warm_rss": warm_rss,
               "warm_cpu": statistics.median(cpu),
               "full": full, "full_rss": full_rss, "rebuild": rebuild,
               "index_bytes": os.path.getsize(index)}
        if size == 10000 or (QUICK and size == sizes[-1]):
            # the first run reads every certificate and writes list-cache; then the cache
            cache = os.path.join(state, "list-cache")
            if os.path.exists(cache):
                os.remove(cache)
            row["list_cold"] = certctl(state, ssl_dir, ["list", "--json"])[0]
            time.sleep(0.2)  # versions younger than 100 ms are not cached (clock tick)
            certctl(state, ssl_dir, ["list", "--json"])
            row["list_json"], row["list_rss"] = median_runs(5, lambda: certctl(
                state, ssl_dir, ["list", "--json"]))
            cpu = []
            for _ in range(5):
                certctl(state, ssl_dir, ["list", "--json"])
                cpu.append(LAST_CPU[0])
            row["list_cpu"] = statistics.median(cpu)
        rows.append(row)
        log(f"{size}: {row}")
        shutil.rmtree(os.path.join(LAB, f"noop{size}"))
    results["noop"] = rows


def force(results):
    """`renew --force` of 1,000 stored local-CA certificates, no proxy: signing and storing."""
    size = 1000
    tpl_state, tpl_ssl, names = templates(os.path.join(LAB, "ftpl"))
    # every copy made first, none removed until the end: on ext4 without a journal, each
    # new inode skips, one by one, those freed in the last minutes (a removed copy would
    # slow the next run down)
    copies = [clone(tpl_state, tpl_ssl, names, os.path.join(LAB, f"force{i}"), size)
              for i in range(3)]
    runs = []
    for state, ssl_dir in copies:
        wall, rss, _ = certctl(state, ssl_dir, ["renew", "--force"])
        runs.append({"wall": wall, "cpu": LAST_CPU[0], "rss": rss})
        log(f"renew --force of {size}: {runs[-1]}")
    for i in range(3):
        shutil.rmtree(os.path.join(LAB, f"force{i}"))
    results["force"] = {"size": size, "runs": runs}


# --- HAProxy at scale --------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def placeholder(ssl_dir):
    key, crt = os.path.join(LAB, "ph.key"), os.path.join(LAB, "ph.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-subj",
                    "/CN=placeholder", "-days", "30"], check=True, capture_output=True)
    with open(os.path.join(ssl_dir, "placeholder.pem"), "w") as f:
        f.write(open(crt).read() + open(key).read())


class Haproxy:
    def __init__(self, name, crt_dir):
        self.port = free_port()
        self.sock = os.path.join(LAB, f"{name}.sock")
        self.pidfile = os.path.join(LAB, "haproxy.pid")
        self.cfg = os.path.join(LAB, f"{name}.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"global\n    stats socket {self.sock} level admin\n    stats timeout 1m\n"
                    f"defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n"
                    f"    timeout connect 5s\nfrontend f\n    bind 127.0.0.1:{self.port} ssl crt "
                    f"{crt_dir}\n    http-request return status 200\n")

    def start(self):
        """Starts it; returns seconds until it serves TLS."""
        started = time.perf_counter()
        subprocess.run(["haproxy", "-f", self.cfg, "-D", "-p", self.pidfile], check=True)
        while True:
            try:
                self.served_der("placeholder")
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)

    def pid(self):
        return int(open(self.pidfile).read().split()[0])

    def memory(self):
        """(VmRSS, VmHWM) in KiB."""
        fields = dict(line.split(":", 1) for line in open(f"/proc/{self.pid()}/status"))
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def stop(self):
        os.kill(self.pid(), 15)
        while os.path.exists(f"/proc/{self.pid()}"):
            time.sleep(0.01)
        os.remove(self.pidfile)

    def served_der(self, sni):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                return tls.getpeercert(binary_form=True)


def serial_of(pem_or_der, der=False):
    args = ["openssl", "x509", "-noout", "-serial"] + (["-inform", "DER"] if der else [])
    out = subprocess.run(args, input=pem_or_der, capture_output=True, check=True).stdout
    return out.decode().strip().split("=", 1)[1].lstrip("0").lower()


def check_served(proxy, ssl_dir, names, sample=50):
    """How many of `sample` names HAProxy serves with the serial of their bundle."""
    good = 0
    for name in random.Random(19).sample(names, min(sample, len(names))):
        with open(os.path.join(ssl_dir, f"{name}.pem"), "rb") as f:
            stored = serial_of(f.read())
        if serial_of(proxy.served_der(name), der=True) == stored:
            good += 1
    return good


def haproxy_scale(results):
    n = 200 if QUICK else 1000
    root = os.path.join(LAB, "hap")
    state, ssl_dir = os.path.join(root, "state"), os.path.join(root, "ssl")
    os.makedirs(ssl_dir, mode=0o700)
    placeholder(ssl_dir)
    proxy = Haproxy("hap", ssl_dir)
    names = [f"h{i}.{DOMAIN}" for i in range(n)]
    log(f"issuing {n} local-CA certificates, their push pending (HAProxy not running yet)")
    for name in names:
        certctl(state, ssl_dir, ["request", name, "--days", "700", "--haproxy-socket",
                                 proxy.sock], check=False)
    r = {"n": n}
    proxy.start()
    r["rss_before"] = proxy.memory()[0]
    log("deploy: every certificate added in one run")
    r["add"], r["add_rss"], code = certctl(state, ssl_dir, ["deploy"])
    r["rss_after_add"] = proxy.memory()[0]
    r["served_after_add"] = check_served(proxy, ssl_dir, names)
    log("deploy: every certificate replaced in one run")
    r["replace"], _, _ = certctl(state, ssl_dir, ["deploy"])
    r["rss_after_replace"] = proxy.memory()[0]
    log("renew --force: signed, stored and pushed")
    r["renew_force"], r["renew_force_rss"], _ = certctl(state, ssl_dir, ["renew", "--force"])
    r["rss_after_renew"] = proxy.memory()[0]
    r["served_after_renew"] = check_served(proxy, ssl_dir, names)
    proxy.stop()
    # the alternative: HAProxy started with the certificates in its directory
    r["reload"] = []
    for k in [1000, 5000]:
        d = os.path.join(LAB, f"reload{k}")
        os.makedirs(d)
        placeholder(d)
        for i in range(k):
            os.link(os.path.join(ssl_dir, f"{names[i % n]}.pem"), os.path.join(d, f"r{i}.pem"))
        p = Haproxy(f"reload{k}", d)
        serves = min(p.start() for _ in range(1) if True)
        rss, hwm = p.memory()
        p.stop()
        r["reload"].append({"certs": k, "serves_after": serves, "rss": rss, "peak": hwm})
        log(f"reload with {k}: {serves:.2f} s, RSS {rss} KiB, peak {hwm} KiB")
        shutil.rmtree(d)
    results["haproxy"] = r
    log(f"haproxy: {r}")


def report(results):
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    print(f"certctl {CERTCTL}; load average {os.getloadavg()[0]:.2f}\n")
    print("| certificates | `renew`, nothing due (index current) | its CPU (user + sys) "
          "| first run (index built) | index missing (rebuilt) "
          "| `renew -v` (reads every certificate) | max RSS | index size |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in results.get("noop", []):
        print(f"| {row['size']:,} | {fmt_t(row['warm'])} | {fmt_t(row['warm_cpu'])} | "
              f"{fmt_t(row['cold'])} | "
              f"{fmt_t(row['rebuild'])} | {fmt_t(row['full'])} | {mib(row['warm_rss'])} | "
              f"{row['index_bytes'] / 1024:.0f} KiB |")
    for row in results.get("noop", []):
        if "list_json" in row:
            print(f"\n`list --json` over {row['size']:,}: {fmt_t(row['list_json'])} "
                  f"(CPU {fmt_t(row['list_cpu'])}, max RSS {mib(row['list_rss'])}); "
                  f"the first run, which writes the cache: {fmt_t(row['list_cold'])}")
    f = results.get("force")
    if f:
        walls = ", ".join(fmt_t(r["wall"]) for r in f["runs"])
        cpus = ", ".join(fmt_t(r["cpu"]) for r in f["runs"])
        print(f"\n`renew --force` of {f['size']:,} stored local-CA certificates, no proxy: "
              f"{walls} (CPU {cpus})")
    h = results.get("haproxy")
    if h:
        n = h["n"]
        print(f"\n| HAProxy 2.6, {n:,} certificates, one run | wall | per second | HAProxy RSS after |")
        print("| --- | --- | --- | --- |")
        print(f"| (before) | | | {mib(h['rss_before'])} |")
        print(f"| `deploy`: all added (new, set, commit, add to crt-list) | {fmt_t(h['add'])} | "
              f"{n / h['add']:.0f} | {mib(h['rss_after_add'])} |")
        print(f"| `deploy`: all replaced (set, commit) | {fmt_t(h['replace'])} | "
              f"{n / h['replace']:.0f} | {mib(h['rss_after_replace'])} |")
        print(f"| `renew --force`: signed, stored, pushed | {fmt_t(h['renew_force'])} | "
              f"{n / h['renew_force']:.0f} | {mib(h['rss_after_renew'])} |")
        print(f"\nServed serial = stored serial for {h['served_after_add']}/50 sampled names "
              f"after the adds and {h['served_after_renew']}/50 after `renew --force`.\n")
        print("| HAProxy started with the certificates in its directory | until it serves "
              "| RSS | peak (VmHWM) |")
        print("| --- | --- | --- | --- |")
        for r in h["reload"]:
            print(f"| {r['certs']:,} | {fmt_t(r['serves_after'])} | {mib(r['rss'])} | "
                  f"{mib(r['peak'])} |")


def main():
    open(CONFIG, "w").close()
    results = {}
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not only or "noop" in only:
        noop(results)
    if not only or "force" in only:
        force(results)
    if not only or "haproxy" in only:
        haproxy_scale(results)
    with open(os.path.join(LAB, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(results)


if __name__ == "__main__":
    main()
