"""What a ``rankstack train distill`` output folder says about itself: the command that made it
(``COMMAND`` in the folder, when kept) and its ``summary.json`` (data, filter, examples, training
time, tokens/s, validation), for a results file.

    python benchmarks/distill_summary.py /work/runs/sup1 --note "..." > benchmarks/results/distill_supervised_dl19.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _common import header  # also sets the offline env defaults


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="a train distill --out folder")
    ap.add_argument("--note", default=None, help="a line on what the run is for")
    args = ap.parse_args()
    cmd_file = os.path.join(args.folder, "COMMAND")
    made_by = open(cmd_file).read().strip() if os.path.exists(cmd_file) else "(no COMMAND file in the folder)"
    header(f"folder {args.folder}; made by: {made_by}", *([args.note] if args.note else []))
    with open(os.path.join(args.folder, "summary.json")) as f:
        print(json.dumps(json.load(f), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
