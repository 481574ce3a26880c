"""What the DataSketches compatibility scripts (sketch_compat.py,
sketch_records.py) share: loading the PyPI `datasketches` module, and
checks that print `ok`/`FAIL` lines and decide the exit status.

Exit status of a script that uses it: 0 when every check passed, 1 when
one failed, 2 when `datasketches` is missing.
"""

import sys

PACKAGE = "datasketches==5.2.0"

failures = []


def import_datasketches():
    """The `datasketches` module; exits 2, saying how to install it, when
    it is missing."""
    try:
        import datasketches
    except ImportError as e:
        print(
            f"the Python module `datasketches` is missing ({e}); "
            f"install it with: {sys.executable} -m pip install {PACKAGE}",
            file=sys.stderr,
        )
        sys.exit(2)
    return datasketches


def check(ok, what):
    """Prints one check's outcome and remembers a failure."""
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def finish():
    """Exits 1 when any check failed; says so when none did."""
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")
