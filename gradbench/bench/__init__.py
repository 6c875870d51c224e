"""The benchmark suite shipped inside the package: profiles and budget (sweep), the pytest
plugin that records the run (plugin), and the timed cases (suite). ``gradbench run`` drives it
with pytest; ``pytest benchmarks/`` runs the same suite from a source checkout."""
