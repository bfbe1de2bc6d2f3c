"""Scale benchmark: our exporter against the naive SQL-exporter way, on a real MariaDB with N jobs."""
