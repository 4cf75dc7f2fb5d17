#!/usr/bin/env python3
"""Prints one closing line for meson test logs: 'tests: N passed, N failed'.

Usage: test-summary.py BUILD_DIR [BUILD_DIR ...]; exits 1 when any test failed
or no test ran, so the line can never hide a failure."""
import json
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    with open(f"{build}/meson-logs/testlog.json") as f:
        for line in f:
            r = json.loads(line)["result"]
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"tests: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
