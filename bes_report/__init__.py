"""bes-report: the monthly availability and reliability report of DIRAC sites, from Prometheus."""
