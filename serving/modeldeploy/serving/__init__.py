"""modeldeploy data plane: the serving sidecar (the routing table it reads is in modeldeploy.contract)."""
