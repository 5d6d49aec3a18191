"""Where the tests' public data sets are: $CHORUS_DATA, else the nearest ../shared/data above the
working directory (None when there is none, and the tests skip)."""
import os


def data_root():
    if os.environ.get("CHORUS_DATA"):
        return os.environ["CHORUS_DATA"]
    here = os.getcwd()
    while True:
        candidate = os.path.join(here, "..", "shared", "data")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
