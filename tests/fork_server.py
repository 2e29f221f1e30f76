"""Run `monitor` commands as real processes without paying the interpreter's start-up each time.

`python -m monitor run` spends about 3 s importing pandas, matplotlib, scipy and statsmodels
before it does anything; the crash tests start some 80 commands. The server (this file, run as
a script by `ForkServer`) imports the monitor once, then for each command forks a child that
runs `monitor.cli.main()` with the command's arguments, folder and environment, and reports
how the child ended. Each command is its own process: its own pid, its own SQLite connections
and files, killed for real by SIGKILL at a crash point; only the imported modules are shared
(copied on fork). The server is single-threaded when it forks (BLAS pools are pinned to one
thread), so the child starts in a clean state.

Protocol: one JSON line per command on stdin, {"argv": [...], "cwd": ..., "env": {...}};
one JSON line back, {"returncode": ..., "stdout": ..., "stderr": ...}, the return code as
subprocess gives it (-9 for SIGKILL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: One BLAS thread: no thread is running when the server forks, and numbers do not depend on a pool.
SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ForkServer:
    """The server process; `run` executes one `monitor` command in a fresh child."""

    def __init__(self) -> None:
        env = {**os.environ, **SINGLE_THREAD}
        root = str(Path(__file__).resolve().parents[1])
        self._proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd=root)  # fmt: skip
        ready = self._proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def run(self, argv, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
        self._proc.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd), "env": env}) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline())
        return subprocess.CompletedProcess(["monitor", *argv], reply["returncode"], reply["stdout"], reply["stderr"])

    def stop(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _child(request: dict, out, err) -> None:
    """In the forked child: become the command, run it, and leave with its exit code (never returns)."""
    import atexit
    import traceback

    import signal

    code = 1
    signal.alarm(300)  # a command that hangs ends (SIGALRM) instead of hanging the tests
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # not the server's request pipe
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["monitor", *request["argv"]]
        from monitor.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:  # click ends every command with sys.exit(code)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        atexit._run_exitfuncs()  # what the interpreter does at exit
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import markdown_it  # noqa: F401  (everything `run` imports, once: else each child imports it again)
    import monitor.alerts.email  # noqa: F401
    import monitor.alerts.outbox  # noqa: F401
    import monitor.cli  # noqa: F401
    import monitor.compare  # noqa: F401
    import monitor.delays  # noqa: F401
    import monitor.detectors  # noqa: F401
    import monitor.fetch  # noqa: F401
    import monitor.lock  # noqa: F401
    import monitor.nowcast  # noqa: F401
    import monitor.pipeline  # noqa: F401
    import monitor.detection  # noqa: F401
    import monitor.report.maps  # noqa: F401
    import monitor.report.plots  # noqa: F401
    import monitor.schedule  # noqa: F401
    import monitor.sources  # noqa: F401
    import monitor.store  # noqa: F401
    import monitor.surges  # noqa: F401

    replies = sys.stdout
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, out, err)
            _, status = os.waitpid(pid, 0)
            out.seek(0)
            err.seek(0)
            reply = {"returncode": os.waitstatus_to_exitcode(status),
                     "stdout": out.read().decode("utf-8", "replace"), "stderr": err.read().decode("utf-8", "replace")}  # fmt: skip
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    serve()
