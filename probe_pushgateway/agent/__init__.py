"""Probe agents (``bes-probe-agent``): submit the bes-probe job to every DIRAC site/CE, reap the stuck ones."""
