"""``python -m reformer_lab.experiments``: the experiment runner (code: :mod:`reformer_lab.measure.experiments`)."""

from reformer_lab.measure.experiments import main

if __name__ == "__main__":
    raise SystemExit(main())
