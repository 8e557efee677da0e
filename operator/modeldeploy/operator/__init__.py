"""modeldeploy control plane: the kopf operator, its API types, planner and analysis."""
