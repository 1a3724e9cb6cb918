"""gunicorn config (benchmarks only): cProfile each worker from fork to exit and write its
statistics to ``$BENCH_PROFILE_DIR/worker-<pid>.prof`` (bench_surge.py ``--profile``).
Under gevent the profile covers all greenlets of the worker: own times are right, the
cumulative times of functions that wait mix in other greenlets' work."""

import cProfile
import os

_profiler = None


def post_fork(server, worker):
    global _profiler
    _profiler = cProfile.Profile()
    _profiler.enable()


def worker_exit(server, worker):
    if _profiler is not None:
        _profiler.disable()
        directory = os.environ["BENCH_PROFILE_DIR"]
        _profiler.dump_stats(os.path.join(directory, f"worker-{os.getpid()}.prof"))
