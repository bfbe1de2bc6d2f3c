"""bes-simulate: a BES3-like DIRAC grid written into DIRAC's own MariaDB schemas, with injected faults.

``topology`` and ``scenarios`` describe the grid and its faults, ``engine`` moves jobs and pilots on a
``clock``, ``writer`` writes them as DIRAC 9.1 does, ``report`` turns the events and alerts into lead times.
"""
