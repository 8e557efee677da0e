// argocd-lua runs the modeldeploy Argo CD health check and resource actions the way Argo CD runs
// argocd-cm customizations: gopher-lua (the Lua VM Argo CD embeds, at the version Argo CD pins) with
// exactly the libraries Argo CD's util/lua opens when resource.customizations.useOpenLibs is unset,
// its 1 s timeout, its JSON conversion (layeh.com/gopher-json), its handling of results, and for
// actions the JSON merge patch its API server sends. See docs/argocd.md for why this is not the
// argo-cd module itself and what that means.
//
//	argocd-lua ARGOCD_CM_PATCH health              < object.json   -> {"status": ..., "message": ...}
//	argocd-lua ARGOCD_CM_PATCH discovery           < object.json   -> [{"name": ..., "disabled": ...}, ...]
//	argocd-lua ARGOCD_CM_PATCH action NAME         < object.json   -> {"operation", "object", "mergePatch"}
//
// An error (a script that fails, a missing customization) is printed on stderr; exit status 1.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

func run(args []string, stdin io.Reader) (any, error) {
	if len(args) < 2 {
		return nil, errors.New("usage: argocd-lua ARGOCD_CM_PATCH health|discovery|action NAME < object.json")
	}
	raw, err := io.ReadAll(stdin)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("object on stdin: %w", err)
	}
	overrides, err := readOverrides(args[0])
	if err != nil {
		return nil, err
	}
	key, err := groupKind(obj)
	if err != nil {
		return nil, err
	}
	override, ok := overrides[key]
	if !ok {
		return nil, fmt.Errorf("no resource customization for %s in %s", key, args[0])
	}
	switch {
	case args[1] == "health" && len(args) == 2:
		return health(override, obj)
	case args[1] == "discovery" && len(args) == 2:
		return discovery(override, obj)
	case args[1] == "action" && len(args) == 3:
		return action(override, obj, args[2])
	}
	return nil, fmt.Errorf("unknown command %q", args[1:])
}

func main() {
	result, err := run(os.Args[1:], os.Stdin)
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(result)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}
