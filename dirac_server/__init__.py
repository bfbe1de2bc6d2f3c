"""A real DIRAC server on loopback for tests and demos: ``scripts/dirac-server.sh up|down|status``.

From the DIRAC package in the project venv (``scripts/install-dirac.sh``) it makes a CA, host and user
certificates, a Configuration Server, DIRAC's MariaDB databases (one name prefix per instance), the
WorkloadManagement/Framework/ResourceStatus services, the optimizers, and pilots running a JobAgent
at the sites that have a worker node. See docs/dirac-server.md.
"""
