"""modeldeploy data plane: the serving sidecar and the routing table it shares with the operator."""
