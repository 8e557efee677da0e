"""`kubectl modeldeploy`: the kubectl plugin for ModelDeployments (status, actions, history, undo)."""
