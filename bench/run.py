"""``python bench/run.py``: every benchmark, one table, against the Python peers.

One command does its own setup: a throwaway PostgreSQL 15 cluster (or ``--dsn``, a superuser
URL of a server you own), the peers' virtualenv (bench/.venv-peers, from PyPI), template
databases for each system. Then it prints the settings, runs the benchmarks, prints one table
and writes bench/results/latest.md (+ .json). ``--quick`` is a smaller smoke run.

Run it with the project's interpreter: ``.venv/bin/python bench/run.py`` (it re-executes
itself with it when started with another one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PULSER_PY, REPO, Measurement, log  # noqa: E402

BENCHES = [
    "raw",
    "enqueue",
    "drain",
    "steps",
    "pickup",
    "depth",
    "sweep",
    "realtime",
    "footprint",
]


def reexec_with_project_python() -> None:
    if Path(sys.executable).resolve() != Path(PULSER_PY).resolve() and Path(PULSER_PY).exists():
        os.execv(PULSER_PY, [PULSER_PY, *sys.argv])


def worker_usable() -> bool:
    """Whether the reference worker can run the benchmark's no-op handler."""
    try:
        from pulser_ops.worker import Worker  # noqa: F401
    except Exception as e:
        log(f"reference worker not usable ({type(e).__name__}: {e}); SDK loop only")
        return False
    return (HERE / "workers" / "pulser_worker.py").exists()


def main() -> int:
    reexec_with_project_python()
    sys.path.insert(0, str(REPO / "src"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of ~5 minutes")
    p.add_argument("--dsn", help="superuser URL of an existing server (else a throwaway one)")
    p.add_argument("--durable", action="store_true", help="synchronous_commit = on")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    p.add_argument("--reps", type=int, default=None, help="repetitions (at least 3)")
    p.add_argument("--drain-runs", type=int, default=None, help="runs per drain (and pgbench)")
    p.add_argument("--no-worker", action="store_true", help="skip the reference worker")
    p.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="FILE[+FILE...]",
        help="SQL applied (files joined by + in order) to a copy of pulser-ops' schema; drain and raw "
        "measure the reference worker and pgbench on it beside the shipped one (repeatable; not shipped)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="default: bench/results/latest.md (experiments-latest.md with --experiment)",
    )
    args = p.parse_args()
    if args.out is None:
        args.out = str(
            HERE / "results" / ("experiments-latest.md" if args.experiment else "latest.md")
        )
    experiments = [[Path(f) for f in value.split("+")] for value in args.experiment]
    for f in (f for files in experiments for f in files):
        if not f.is_file():
            p.error(f"--experiment {f}: no such file")

    import cluster
    import report
    import settings
    from ctx import Ctx, Sizes
    from setup_env import Databases, ensure_peers_venv, peer_versions

    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.reps:
        sizes.reps = max(3, args.reps)
    if args.drain_runs:
        sizes.drain_runs = args.drain_runs
    chosen = [b for b in args.only.split(",") if b]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmarks: {sorted(unknown)}")

    started = time.monotonic()
    ensure_peers_venv()
    server = cluster.open_server(args.dsn, args.durable)
    scratch = Path(tempfile.mkdtemp(prefix="pulser-ops-bench-scratch-"))
    dbs = Databases(server, experiments=experiments)
    rows: list[Measurement] = []
    failed: list[str] = []
    try:
        dbs.build()
        use_worker = not args.no_worker and worker_usable()
        info = settings.collect(
            server.admin_url,
            peer_versions(),
            {
                "quick": args.quick,
                "repetitions": sizes.reps,
                "benchmarks": chosen,
                "reference worker": use_worker,
                "experiments (not shipped)": args.experiment,
                **{k: v for k, v in vars(sizes).items() if k != "reps"},
            },
        )
        print(settings.render(info), flush=True)
        ctx = Ctx(dbs=dbs, sizes=sizes, scratch=scratch, use_worker=use_worker)
        for name in chosen:
            log(f"--- {name}")
            module = __import__(f"b_{name}")
            try:
                rows += module.run(ctx)
            except Exception as e:  # one broken benchmark must not lose the others' numbers
                log(f"{name} FAILED: {type(e).__name__}: {e}")
                traceback.print_exc()
                failed.append(name)
            dbs.cleanup()
        info["failed benchmarks"] = failed
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        out_dir = Path(args.out).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        for plan in scratch.glob("plan-*.txt"):  # EXPLAIN of the claim probe per depth
            shutil.copy(plan, out_dir / plan.name)
        elapsed = time.monotonic() - started
        report.print_table(rows)
        report.write(rows, info, elapsed, Path(args.out))
        log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    finally:
        try:
            dbs.cleanup()
        finally:
            server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    missed = [m for m in rows if m.status == "MISSED"]
    print(
        json.dumps(
            {"targets_met": sum(m.status == "met" for m in rows), "targets_missed": len(missed)}
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
