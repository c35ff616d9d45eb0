"""``python -m examples.booking [DIR]``: play the story in DIR (a new
temporary directory by default) and print the checked summary."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from . import run, summarize


def main() -> int:
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="booking-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    lock = threading.Lock()  # services report from their own threads

    def say(who: str, text: str) -> None:
        with lock:
            print(f"{time.monotonic() - t0:6.2f}s  {who:<9} {text}", flush=True)

    summary = summarize(run(workdir, say))
    for check in summary["checks"]:
        print("ok  " if check["ok"] else "FAIL", check["name"], "-", check["detail"])
    print(f"files in {workdir}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
