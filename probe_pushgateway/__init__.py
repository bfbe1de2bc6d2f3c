"""Worker-node probe pushing to a Prometheus Pushgateway, and the agents that send it to every site."""
