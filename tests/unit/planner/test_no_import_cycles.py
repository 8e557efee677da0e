"""The planner's modules import each other without cycles (type-only imports included).

The layers between packages are import-linter's (`make lint`); this covers the modules inside
the planner, which import-linter's layers do not order.
"""

from __future__ import annotations

import grimp

PLANNER = "modeldeploy.operator.planner"


def test_no_planner_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("modeldeploy.operator", "modeldeploy.contract")
    modules = sorted(m for m in graph.modules if m.startswith(PLANNER + "."))
    assert len(modules) > 15
    cycles = [
        (module, imported)
        for module in modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith(PLANNER + ".") and graph.chain_exists(importer=imported, imported=module)
    ]
    assert cycles == []
