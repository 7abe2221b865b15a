"""bspec's benchmarks. `make bench` runs `python -m bench`, which writes docs/benchmarks.md."""
