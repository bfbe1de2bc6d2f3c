"""Prometheus exporter for DIRAC's JobDB, PilotAgentsDB and ResourceStatusDB."""

__version__ = "0.1.0"
