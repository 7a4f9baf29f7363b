"""Run the fleece CLI, pausing after each change it makes to the files of a folder.

    python paused_fleece.py ROOT FLEECE-ARGUMENTS...

After every ``os.replace``, ``os.unlink`` and ``os.rmdir`` under ROOT, it writes
one line (``replace PATH``) to the file descriptor named by the environment
variable ``FLEECE_TEST_REPORT_FD`` and waits for one byte on ``FLEECE_TEST_GO_FD``
(end of file: go on without pausing). A test reads the lines and decides, at
each step, whether to let the process go on or to kill it there: a real
process, stopped by a real signal, at every moment that matters.
"""

import os
import sys
from collections.abc import Callable
from typing import Any


def main() -> None:
    root = os.path.realpath(sys.argv[1])
    report = os.fdopen(int(os.environ["FLEECE_TEST_REPORT_FD"]), "w", buffering=1)
    go = os.fdopen(int(os.environ["FLEECE_TEST_GO_FD"]), "rb", buffering=0)

    def pausing(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def operation(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            if kwargs.get("dir_fd") is not None:
                return result  # shutil.rmtree clearing a temp folder
            path = os.path.realpath(os.fspath(args[1 if name == "replace" else 0]))
            if path == root or path.startswith(root + os.sep):
                report.write(f"{name} {os.path.relpath(path, root)}\n")
                go.read(1)
            return result

        return operation

    for name in ("replace", "unlink", "rmdir"):
        setattr(os, name, pausing(name, getattr(os, name)))

    from fleece.cli import main as fleece

    fleece(sys.argv[2:])


if __name__ == "__main__":
    main()
