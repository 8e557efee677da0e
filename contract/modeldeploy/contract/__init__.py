"""The contract between the operator and the sidecar, defined once.

- `routing`: the routing table (ConfigMap `<model>-routing`, key `routing.json`) with its canary,
  shadow, comparison, guard and data-path settings, as pydantic models. Its JSON Schema is generated
  into `contract/routing-table.schema.json` (`make contract`) and `contract/vectors/` holds valid and
  invalid tables that the Python and the Rust tests both load.
- `comparison`: what "equal" means for a shadow answer (and for a golden check's expected body).
- `json_pointer`: the pointer syntax of drift feature paths.
- `labels`: names, labels and annotations of the children (sidecar, kubectl plugin and tests rely on them).

The operator and the sidecar both import this package; neither imports the other.
"""
