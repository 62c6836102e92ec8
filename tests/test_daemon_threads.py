"""Daemon threads (run threads, handler threads) are made on demand, reused once idle, daemons, and survive a failing run."""

from __future__ import annotations

import threading

from pulser_ops.daemon_threads import DaemonThreads


def test_threads_are_reused_and_grow_only_when_all_are_busy() -> None:
    pool = DaemonThreads(name="t-run")
    names: list[str] = []
    done = threading.Semaphore(0)

    def job() -> None:
        names.append(threading.current_thread().name)
        assert threading.current_thread().daemon
        done.release()

    for _ in range(5):  # one after another (each waits for the thread to be idle): one thread
        pool.submit(job)
        assert done.acquire(timeout=10)
        while pool._idle == 0:
            threading.Event().wait(0.001)
    assert set(names) == {"t-run-0"}

    release = threading.Event()
    started = threading.Semaphore(0)

    def busy() -> None:
        started.release()
        release.wait(10)

    for _ in range(3):  # three at once: three threads
        pool.submit(busy)
    for _ in range(3):
        assert started.acquire(timeout=10)
    release.set()
    assert len(pool._threads) == 3
    pool.close()


def test_a_failing_run_does_not_kill_its_thread() -> None:
    pool = DaemonThreads(name="t-fail")
    ok = threading.Event()

    def boom() -> None:
        raise RuntimeError("handler bug")

    pool.submit(boom)
    pool.submit(ok.set)
    assert ok.wait(10)
    pool.close()


def test_call_hands_back_the_result_or_the_exception() -> None:
    pool = DaemonThreads(name="t-call")
    assert pool.call(lambda: 41 + 1).result(timeout=10) == 42

    def boom() -> int:
        raise ValueError("no")

    try:
        pool.call(boom).result(timeout=10)
    except ValueError as e:
        assert str(e) == "no"
    else:
        raise AssertionError("the exception was lost")
    pool.close()
