"""A fork server that runs ``wsideid`` command lines as separate processes, cheaply.

Why: starting ``python -m wsideid.cli`` costs ~0.6 s of imports, so a few
hundred hostile files would take minutes. This server imports the tool once
and forks a fresh child per case; the child calls ``wsideid.cli.main`` (what
the console script calls) with its own stdout/stderr files, its own process
group, an address-space limit, and exits with main's return code. The parent
(``proc.Runner``) reads the exit status, the peak RSS of the child and its
waited-for children (``os.wait4``), and kills the whole group on a timeout.

Protocol: one JSON request per stdin line, one JSON answer per stdout line.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time


def _child(req: dict) -> None:
    """In the forked child: limits, redirections, then the command line; never returns."""
    code = 70
    try:
        os.setpgid(0, 0)
        limit = int(req.get("as_limit") or 0)
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir(req["cwd"])
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        os.environ.update(req.get("env") or {})
        from wsideid.cli import main
        code = main(list(req["argv"]))
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - reported as a finding by the runner
        try:
            os.write(2, f"zygote: {type(exc).__name__} escaped main\n".encode())
        except OSError:
            pass
        code = 71
    finally:
        try:
            import atexit
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


def _run(req: dict) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req)
    deadline = start + float(req.get("timeout", 60))
    timed_out = False
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            break
        if time.monotonic() > deadline:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            got, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.005)
    try:  # grandchildren left running (a reader child, a converter) go with the case
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return {"rc": os.waitstatus_to_exitcode(status), "timed_out": timed_out, "maxrss_kb": usage.ru_maxrss,
            "seconds": time.monotonic() - start}


def serve() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import wsideid.cli  # noqa: F401 - imported once, inherited by every child
    import wsideid.pipeline  # noqa: F401
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(_run(json.loads(line))), flush=True)


if __name__ == "__main__":
    serve()
