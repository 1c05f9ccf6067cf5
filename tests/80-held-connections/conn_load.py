#!/usr/bin/python3
"""Connection load for the matrix suites (asyncio, system python, no third-party modules).

  conn_load.py hold HOST PORT --conns N --seconds S [--every 10]
      open N TCP connections (ramping, at most 200 connects in flight), keep every one open for
      S seconds after the last one is up, each sending a 16-byte numbered message every
      --every seconds and checking that exactly that comes back (an echo server), then close.
  conn_load.py rate HOST PORT --rate R --seconds S [--timeout 10]
      open R new connections per second for S seconds; each sends 64 bytes, reads the echo,
      closes. Each must finish within --timeout.

Output, one line:
  HOLD conns=<n> up=<k> failed=<f> msgs=<m> bad=<b> ramp_s=<t>
  RATE rate=<r> started=<n> ok=<k> failed=<f> timed_out=<t> p99_ms=<..>
plus "ERROR <first failures>" lines (at most 5). Exit 0 always (the suite judges the facts).
Bounded: every wait has a timeout; hold mode ends at ramp + S + 30 s at the latest.
"""
import argparse
import asyncio
import resource
import sys
import time

errors = []


def note(e):
    if len(errors) < 5:
        errors.append(str(e))


async def one_held(host, port, idx, stop_at, every, stats, sem, up_event_counter):
    try:
        async with sem:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 15)
        stats["up"] += 1
    except Exception as e:  # noqa: BLE001 - every failure is a fact to report
        stats["failed"] += 1
        note(f"connect {idx}: {e!r}")
        return
    seq = 0
    try:
        # First message at once (proves the path), then every `every` seconds, staggered.
        delay = 0.0
        while True:
            msg = f"{idx:08d}{seq:08d}".encode()
            w.write(msg)
            await asyncio.wait_for(w.drain(), 15)
            got = await asyncio.wait_for(r.readexactly(16), 15)
            stats["msgs"] += 1
            if got != msg:
                stats["bad"] += 1
                note(f"conn {idx}: echo mismatch")
                break
            seq += 1
            delay = every if seq > 1 else (idx % max(1, int(every * 10))) / 10.0 + 0.1
            if time.monotonic() + delay >= stop_at():
                remaining = stop_at() - time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(remaining)
                break
            await asyncio.sleep(delay)
    except Exception as e:  # noqa: BLE001
        stats["failed"] += 1
        note(f"conn {idx} after {seq} msgs: {e!r}")
    finally:
        w.close()
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except Exception:  # noqa: BLE001
            pass


async def hold(a):
    stats = {"up": 0, "failed": 0, "msgs": 0, "bad": 0}
    sem = asyncio.Semaphore(200)
    t0 = time.monotonic()
    ramp_done = {"t": None}

    def stop_at():
        # Every connection is held until S seconds after the ramp ended.
        return (ramp_done["t"] or (time.monotonic() + 3600)) + a.seconds

    tasks = [asyncio.ensure_future(one_held(a.host, a.port, i, stop_at, a.every, stats, sem, None))
             for i in range(a.conns)]
    while stats["up"] + stats["failed"] < a.conns and time.monotonic() - t0 < 120:
        await asyncio.sleep(0.1)
    ramp_done["t"] = time.monotonic()
    ramp = ramp_done["t"] - t0
    print(f"RAMP up={stats['up']} failed={stats['failed']} ramp_s={ramp:.1f}", flush=True)
    done, pending = await asyncio.wait(tasks, timeout=a.seconds + 45)
    for p in pending:
        p.cancel()
        stats["failed"] += 1
    print(f"HOLD conns={a.conns} up={stats['up']} failed={stats['failed']} msgs={stats['msgs']} "
          f"bad={stats['bad']} ramp_s={ramp:.1f}", flush=True)


async def one_short(host, port, timeout, stats, lat):
    t = time.monotonic()
    try:
        async def go():
            r, w = await asyncio.open_connection(host, port)
            try:
                w.write(b"r" * 64)
                await w.drain()
                got = await r.readexactly(64)
                if got != b"r" * 64:
                    raise RuntimeError("echo mismatch")
            finally:
                w.close()
        await asyncio.wait_for(go(), timeout)
        stats["ok"] += 1
        lat.append(time.monotonic() - t)
    except asyncio.TimeoutError:
        stats["timed_out"] += 1
        note("timed out")
    except Exception as e:  # noqa: BLE001
        stats["failed"] += 1
        note(repr(e))


async def rate(a):
    stats = {"started": 0, "ok": 0, "failed": 0, "timed_out": 0}
    lat = []
    tasks = []
    t0 = time.monotonic()
    n = int(a.rate * a.seconds)
    for i in range(n):
        due = t0 + i / a.rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        stats["started"] += 1
        tasks.append(asyncio.ensure_future(one_short(a.host, a.port, a.timeout, stats, lat)))
    if tasks:
        await asyncio.wait(tasks, timeout=a.timeout + 5)
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0
    print(f"RATE rate={a.rate} started={stats['started']} ok={stats['ok']} failed={stats['failed']} "
          f"timed_out={stats['timed_out']} p99_ms={p99:.1f}", flush=True)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["hold", "rate"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--conns", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--every", type=float, default=10)
    p.add_argument("--rate", type=float, default=300)
    p.add_argument("--timeout", type=float, default=10)
    a = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, a.conns + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    asyncio.run(hold(a) if a.mode == "hold" else rate(a))
    for e in errors:
        print(f"ERROR {e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
