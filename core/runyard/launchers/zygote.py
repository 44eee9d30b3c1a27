"""A warm start for run workers: a small server process that has already imported runyard,
SQLAlchemy, pydantic and the installed storage plugins, and forks one child per run.

A cold ``python -m runyard execute-run`` pays several hundred milliseconds of imports before it
does anything; a fork of this process pays about a millisecond. The zygote is single-threaded (so
forking it is safe), reads one JSON request per line on stdin, answers one JSON line on stdout,
reaps its children and writes each one's exit status next to its log, and exits when its parent
closes the pipe. Forked workers call ``setsid`` so they outlive the zygote and its parent.

The zygote is a child subreaper: what a worker killed by a signal orphaned comes back to it, even
a daemon that left the worker's session, and it kills that together with the rest of the dead
worker's session. Only then (never on a launch) does it read /proc beyond its own children.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys


def _preload() -> None:
    import pydantic  # noqa: F401
    import sqlalchemy  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401
    import yaml  # noqa: F401 - every worker reads the instance file (about 20 ms to import)

    import runyard.definitions.config  # noqa: F401
    import runyard.definitions.definitions  # noqa: F401 - what loading the user's code needs
    import runyard.definitions.job  # noqa: F401
    import runyard.execution.plan  # noqa: F401
    import runyard.execution.run_worker  # noqa: F401
    import runyard.execution.step  # noqa: F401
    import runyard.executors.in_process  # noqa: F401
    import runyard.instance.instance  # noqa: F401
    import runyard.instance.yaml_source  # noqa: F401
    import runyard.workspace.loader  # noqa: F401
    from runyard.plugins import COMPONENT_KINDS, get_registry

    for kind in COMPONENT_KINDS:
        reg = get_registry(kind)
        if kind == "storage":  # import every storage implementation now, not in each child
            for r in reg.registrations():
                try:
                    _ = r.cls
                except Exception:  # noqa: BLE001 - a broken plugin is reported by the worker that selects it
                    pass


def _reap(signum: int, frame: object) -> None:
    from runyard.launchers.procinfo import describe_exit

    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exit_file = _exit_files.pop(pid, None)
        if exit_file:
            try:
                with os.fdopen(os.open(exit_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                    f.write(describe_exit(status))
            except OSError:
                pass
            if os.WIFSIGNALED(status):  # it could not kill what it started: do it for it
                _kill_leftovers(pid)


def _kill_leftovers(worker: int) -> None:
    """SIGKILL the dead worker's session, and every child of ours that is not a worker (orphans
    re-parented to us, this subreaper, as the worker and its descendants died)."""
    from runyard.launchers import procinfo

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # no nested _reap meanwhile
    try:
        procinfo.kill_session(worker)
        workers = (procinfo.read_stat(pid) for pid in procinfo.children(os.getpid()) if pid in _exit_files)
        procinfo.kill_tree(frozenset((w.pid, w.start_ticks) for w in workers if w is not None))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


_exit_files: dict[int, str] = {}


def _child(request: dict) -> None:
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # private_files
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if "env" in request:  # the worker's whole environment (secrets it does not use already left out)
        os.environ.clear()
        os.environ.update(request["env"])
    if request.get("cwd"):
        os.chdir(request["cwd"])
    code = 1
    try:
        from runyard.execution.worker_main import run_worker_main

        code = run_worker_main(request["run_id"])
    except BaseException:  # noqa: BLE001 - report and exit; never return into the zygote loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    # Ctrl-C in a terminal signals the whole foreground group: the zygote leaves when its parent
    # closes the pipe, not on SIGINT (and prints no traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    from runyard.launchers.procinfo import become_subreaper, start_ticks

    become_subreaper()
    signal.signal(signal.SIGCHLD, _reap)
    idle_seconds = float(sys.argv[1]) if len(sys.argv) > 1 else None
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    while True:
        # Leave after idle_seconds without a request (select retries after SIGCHLD by itself).
        if idle_seconds and not select.select([sys.stdin], [], [], idle_seconds)[0]:
            return
        line = sys.stdin.readline()
        if not line:
            return  # the launcher closed the pipe
        if not line.strip():
            continue
        request = json.loads(line)
        out.flush()
        # SIGCHLD waits until the new worker is registered: the handler kills unknown children
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            _child(request)
        _exit_files[pid] = request["log_path"] + ".exit"
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        out.write(json.dumps({"pid": pid, "start": start_ticks(pid)}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
