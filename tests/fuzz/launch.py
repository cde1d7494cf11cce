"""Run a command as a child and write its peak RSS (``wait4``) to a file.

Why a launcher: Linux keeps a process's RSS high-water mark across fork and exec, so a
``python -m wsideid.cli`` forked straight from a pytest worker that has grown to 500 MB
reports 500 MB, whatever the tool used. Forked from this small process instead, the
figure is the tool's own. The exit status is passed on (a signal as the same signal).

Usage: launch.py REPORT_FILE ARGV...
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    report, argv = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(report, "w") as fh:
        fh.write(str(usage.ru_maxrss))
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
