"""Compare nestbench against a NeMo parity fixture and print the max abs differences.

Usage:
    .venv/bin/python tools/check_parity.py tests/fixtures/parity/tiny
    .venv/bin/python tools/check_parity.py /tmp/parity_large      # after make_parity_fixture.py --size large
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from nestbench.testing.parity import compare_with_reference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture", help="folder written by tools/make_parity_fixture.py")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        report = compare_with_reference(args.fixture, cache_dir=cache)
    print(json.dumps({**report.__dict__, "worst": report.worst}, indent=2))
    ok = report.lengths_match and report.worst <= args.tolerance
    print("PARITY OK" if ok else "PARITY FAILED", f"(tolerance {args.tolerance:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
