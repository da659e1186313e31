#!/usr/bin/env python3
"""The fleet benchmark: N simulated weather appliances in one `hearth sim --fleet` process
against one local mosquitto, then a broker restart under them (the thundering herd).

Not a test: it measures and prints a report. Standard library only; needs mosquitto and
mosquitto-clients (scripts/test.sh installs both) and a built `hearth` (cargo build --bin hearth).

    scripts/fleet-bench.py --devices 1000 10000

For each size it reports, measured in one run:
- the time from the fleet's start until every device is online (retained `tele/<name>/LWT`
  Online seen by a subscriber), and how the arrivals spread;
- the fleet process's memory (VmRSS) per device and its CPU once all are online, over a quiet
  window; the broker's too;
- the broker's answer time (a probe message's round trip through it) while quiet and during
  the herd;
- the herd: the broker is stopped and started again; how the reconnects spread over time,
  how long until every device is back, and how many devices rebooted (none should);
- a warm start: the fleet process stopped and started again on the same state directories
  (the first start also creates every device's flash files).

The devices run their config's defaults (weather: a reading every minute, start-up delay up
to 10 s, MQTT backoff 0.5 s doubling to 60 s with jitter), as a user's would.
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200_000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc(pid):
    """(RSS in KiB, CPU seconds) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK
    return rss, cpu


class Broker:
    def __init__(self, port, work):
        self.port = port
        self.conf = os.path.join(work, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_connections -1\nmax_queued_messages 1000\n")
        self.log = open(os.path.join(work, "mosquitto.log"), "ab")
        self.p = None

    def start(self):
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.p = subprocess.Popen([mosquitto, "-c", self.conf], stdout=self.log,
                                  stderr=subprocess.STDOUT, preexec_fn=raise_files)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        sys.exit("mosquitto did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Watch:
    """Who is online, when each came online (since `mark`), and the broker's answer time."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.online = {}
        self.mark = time.time()
        self.probes = {}
        self.rtts = []
        self.sub = None

    def start(self, mark, skip_retained=False):
        """Count arrivals from `mark`; with `skip_retained`, not what the broker kept from
        before (a retained message reaches a new subscriber with its flag set)."""
        with self.lock:
            self.online = {}
            self.mark = mark
            self.rtts = []
            self.skip_retained = skip_retained
        while True:
            self.sub = subprocess.Popen(
                ["mosquitto_sub", "-p", str(self.port), "-F", "%r %t %p", "-t", "tele/+/LWT",
                 "-t", "bench/probe"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, bufsize=1)
            time.sleep(0.2)
            if self.sub.poll() is None:
                break
        threading.Thread(target=self._read, args=(self.sub,), daemon=True).start()

    def _read(self, sub):
        for line in sub.stdout:
            now = time.time()
            retained, _, rest = line.rstrip("\n").partition(" ")
            topic, _, payload = rest.partition(" ")
            if retained == "1" and self.skip_retained:
                continue
            with self.lock:
                if topic == "bench/probe":
                    sent = self.probes.pop(payload, None)
                    if sent is not None:
                        self.rtts.append(now - sent)
                elif payload == "Online":
                    name = topic.split("/")[1]
                    self.online.setdefault(name, now - self.mark)
                elif payload == "Offline":
                    pass

    def probe(self):
        key = f"p{time.time_ns()}"
        with self.lock:
            self.probes[key] = time.time()
        subprocess.run(["mosquitto_pub", "-p", str(self.port), "-t", "bench/probe", "-m", key],
                       stderr=subprocess.DEVNULL, timeout=30, check=False)

    def stop(self):
        if self.sub:
            self.sub.kill()
            self.sub.wait()

    def count(self):
        with self.lock:
            return len(self.online)

    def times(self):
        with self.lock:
            return sorted(self.online.values())


def spread(times, total):
    """Arrivals per time bucket, as `0-5 s: 1200` lines, and percentiles."""
    if not times:
        return "none"
    last = times[-1]
    width = 1 if last <= 20 else 5 if last <= 120 else 15
    buckets = {}
    for t in times:
        buckets[int(t // width)] = buckets.get(int(t // width), 0) + 1
    lines = [f"    {b * width:>4}-{(b + 1) * width:<4} s  {n:>6}  {'#' * max(1, round(60 * n / total))}"
             for b, n in sorted(buckets.items())]
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
    lines.append(f"    first {times[0]:.1f} s, median {q(0.5):.1f} s, 90 % {q(0.9):.1f} s, "
                 f"all {len(times)} by {last:.1f} s")
    return "\n".join(lines)


def boots(log):
    try:
        with open(log, errors="replace") as f:
            return sum(1 for line in f if "] boot #" in line)
    except FileNotFoundError:
        return 0


def stop_fleet(hearth, fleet, state):
    subprocess.run([hearth, "sim", "ctl", state, "quit"], capture_output=True, check=False)
    try:
        fleet.wait(30)
    except subprocess.TimeoutExpired:
        fleet.kill()
        fleet.wait()


def rtt_text(rtts):
    if not rtts:
        return "no probe came back"
    ms = sorted(r * 1000 for r in rtts)
    return f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} probes)"


def run(hearth, n, quiet_s, down_s, timeout_s, keep):
    work = tempfile.mkdtemp(prefix=f"hearth-fleet-bench-{n}-")
    port = free_port()
    broker = Broker(port, work)
    broker.start()
    template = os.path.join(work, "weather.txt")
    with open(template, "w") as f:
        f.write(f"profile weather\nssid Bench\npassword bench-passphrase\n"
                f"mqttbroker 127.0.0.1:{port}\nmqttname wx\n")
    state = os.path.join(work, "fleet")
    watch = Watch(port)
    out = [f"## {n} weather devices (state {state})", ""]
    t0 = time.time()
    watch.start(t0)
    fleet = subprocess.Popen([hearth, "sim", "--fleet", str(n), "--config", template,
                              "--state", state], stdout=open(os.path.join(work, "fleet.out"), "w"),
                             stderr=subprocess.STDOUT, preexec_fn=raise_files)
    peak = 0
    while watch.count() < n:
        if fleet.poll() is not None:
            sys.exit(f"the fleet ended with {fleet.returncode}; see {work}/fleet.out")
        if time.time() - t0 > timeout_s:
            sys.exit(f"only {watch.count()} of {n} online after {timeout_s} s")
        peak = max(peak, proc(fleet.pid)[0])
        time.sleep(0.5)
    all_online = time.time() - t0
    start_cpu = proc(fleet.pid)[1]
    out += [f"- start-up: all {n} online {all_online:.1f} s after the fleet started "
            f"(fleet CPU {start_cpu:.1f} s so far; peak RSS {peak / 1024:.0f} MiB); arrivals:",
            spread(watch.times(), n), ""]

    # Quiet: every device publishing as configured.
    time.sleep(5)
    rss0, cpu0 = proc(fleet.pid)
    _, bcpu0 = proc(broker.p.pid)
    t1 = time.time()
    while time.time() - t1 < quiet_s:
        watch.probe()
        time.sleep(1)
    dt = time.time() - t1
    rss1, cpu1 = proc(fleet.pid)
    brss, bcpu1 = proc(broker.p.pid)
    quiet_rtt = rtt_text(watch.rtts)
    out += [f"- memory: fleet RSS {rss1 / 1024:.0f} MiB = **{rss1 / n:.0f} KiB per device**; "
            f"broker RSS {brss / 1024:.0f} MiB",
            f"- CPU over {dt:.0f} s with all online: fleet **{100 * (cpu1 - cpu0) / dt:.1f} %** of "
            f"one core ({1e6 * (cpu1 - cpu0) / dt / n:.0f} µs per device per second), broker "
            f"{100 * (bcpu1 - bcpu0) / dt:.1f} %",
            f"- broker answer time while quiet: {quiet_rtt}", ""]

    # The herd: stop the broker, start it again.
    log = os.path.join(state, "fleet.log")
    boots_before = boots(log)
    watch.stop()
    broker.stop()
    time.sleep(down_s)
    broker.start()
    t2 = time.time()
    watch.start(t2)
    cpu2 = proc(fleet.pid)[1]
    while watch.count() < n:
        if time.time() - t2 > timeout_s:
            break
        watch.probe()
        time.sleep(0.5)
    back = time.time() - t2
    herd_rtt = rtt_text(watch.rtts)
    cpu3 = proc(fleet.pid)[1]
    time.sleep(2)
    rebooted = boots(log) - boots_before
    out += [f"- herd: broker stopped for {down_s:.0f} s and started again; "
            f"**{watch.count()} of {n} back {back:.1f} s** after the restart; arrivals:",
            spread(watch.times(), n),
            f"- broker answer time during the herd: {herd_rtt}",
            f"- fleet CPU during the herd: {cpu3 - cpu2:.1f} s over {back:.1f} s",
            f"- devices rebooted by the restart: **{rebooted}**", ""]
    stop_fleet(hearth, fleet, state)

    # Warm: the same devices, their flash files already there.
    t3 = time.time()
    watch.stop()
    watch.start(t3, skip_retained=True)
    fleet = subprocess.Popen([hearth, "sim", "--fleet", str(n), "--config", template,
                              "--state", state], stdout=open(os.path.join(work, "fleet2.out"), "w"),
                             stderr=subprocess.STDOUT, preexec_fn=raise_files)
    while watch.count() < n and time.time() - t3 < timeout_s and fleet.poll() is None:
        time.sleep(0.5)
    warm = time.time() - t3
    warm_cpu = proc(fleet.pid)[1] if fleet.poll() is None else float("nan")
    out += [f"- warm start (the fleet process again, on the same state): **{watch.count()} of {n} "
            f"online {warm:.1f} s** after it started (CPU {warm_cpu:.1f} s); arrivals:",
            spread(watch.times(), n), ""]
    stop_fleet(hearth, fleet, state)
    watch.stop()
    broker.stop()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--quiet", type=float, default=60, help="seconds of the quiet window")
    ap.add_argument("--down", type=float, default=5, help="seconds the broker stays stopped")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--hearth", default=os.path.join(ROOT, "target", "debug", "hearth"))
    ap.add_argument("--keep", action="store_true", help="keep the state directories")
    a = ap.parse_args()
    raise_files()
    cores = os.cpu_count()
    print(f"# hearth fleet benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{cores} cores, {a.hearth}\n", flush=True)
    for n in a.devices:
        print(run(a.hearth, n, a.quiet, a.down, a.timeout, a.keep), flush=True)


if __name__ == "__main__":
    main()
