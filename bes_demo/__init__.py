"""The demo stack: the simulator, the exporter, the probe agents, Prometheus and Alertmanager on loopback.

``cli`` is ``make demo`` / ``make demo-down``; ``services`` starts and stops the Prometheus daemons (also
used by the tests), ``stack`` wires them to our exporter and rules, ``rules`` compresses the shipped
rules' clock, ``alertlog`` keeps every alert that was ever active.
"""
