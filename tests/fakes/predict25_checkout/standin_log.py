"""Append one JSON line to $STANDIN_LOG (tests read it back)."""

import json
import os


def log(**event):
    with open(os.environ["STANDIN_LOG"], "a") as f:
        f.write(json.dumps(event) + "\n")
