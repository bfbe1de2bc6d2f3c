"""Access to DIRAC's MySQL databases, shared by the exporter, the probe agents, the simulator and the benchmark.

``connection``: one bounded, lazily reconnected PyMySQL connection (timeouts, TLS); ``schema``: DIRAC's
own table definitions, taken from DIRAC's wheels, loaded into MariaDB (tests, demo, simulator, bench).
"""
