"""``python -m reformer_lab.bench``: the benchmarks' command line (the code is in :mod:`reformer_lab.measure.bench`)."""

from reformer_lab.measure.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
