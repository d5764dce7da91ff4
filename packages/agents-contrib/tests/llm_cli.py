"""A stand-in command-line model runner for the command backend's tests.

    python llm_cli.py reply          print a JSON report of stdin and the ORCHESTRATOR_* environment
    python llm_cli.py fail           write to stderr and exit 3
    python llm_cli.py silent         print nothing
    python llm_cli.py flood          print far more than any limit
    python llm_cli.py noread         print without reading stdin
    python llm_cli.py hang PORT      start a child, send the agent id and both pids to 127.0.0.1:PORT,
                                     then wait forever
    python llm_cli.py pidfile DIR    start a child, write both pids to the file DIR/<own pid>, then
                                     wait forever
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time


def main() -> int:
    mode = sys.argv[1]
    if mode == "reply":
        stdin = sys.stdin.read()
        env = {k: v for k, v in os.environ.items() if k.startswith(("ORCHESTRATOR_", "ORCH_", "EXTRA_"))}
        print(json.dumps({"stdin": stdin, "env": env, "cwd": os.getcwd()}))
        return 0
    if mode == "fail":
        sys.stdin.read()
        print("loading model...", file=sys.stderr)
        print("error: model file is corrupt", file=sys.stderr)
        return 3
    if mode == "silent":
        sys.stdin.read()
        return 0
    if mode == "flood":
        chunk = "x" * 65536
        for _ in range(1000):
            sys.stdout.write(chunk)
        return 0
    if mode == "noread":
        print("answered without reading")
        return 0
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as connection:
            connection.sendall(f"{os.environ['ORCHESTRATOR_AGENT_ID']} {os.getpid()} {child.pid}".encode())
        time.sleep(600)
        return 0
    if mode == "pidfile":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        written = os.path.join(sys.argv[2], str(os.getpid()))
        with open(written + ".part", "w") as pids:
            pids.write(f"{os.getpid()} {child.pid}")
        os.rename(written + ".part", written)  # whole, or not there
        time.sleep(600)
        return 0
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
