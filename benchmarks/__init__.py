"""Load and fault harnesses for flask-ccguard (run ``python -m benchmarks.load --help``)."""
