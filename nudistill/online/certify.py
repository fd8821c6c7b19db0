"""The clean process that :func:`nudistill.online.latency.certify` starts; not a command for users.

It reads one JSON request (the arguments of :func:`~nudistill.online.latency.measure`) from its first
argument and prints the certificate as one JSON line; a model it cannot measure exits 2 with one sentence
on stderr. Only numpy and onnxruntime are imported, so the process is the one an online filter runs.
"""

from __future__ import annotations

import json
import sys

from nudistill.online.latency import measure


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    try:
        cert = measure(request.pop("path"), **request)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(cert))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
