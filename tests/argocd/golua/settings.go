package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// override is what Argo CD keeps per group/kind from argocd-cm (appv1.ResourceOverride, the parts
// the Lua engine reads).
type override struct {
	HealthLua   string
	UseOpenLibs bool
	Actions     actions
}

// actions is the value of resource.customizations.actions.<group_kind> (appv1.ResourceActions).
type actions struct {
	DiscoveryLua        string             `json:"discovery.lua"`
	Definitions         []actionDefinition `json:"definitions"`
	MergeBuiltinActions bool               `json:"mergeBuiltinActions"`
}

type actionDefinition struct {
	Name      string `json:"name"`
	ActionLua string `json:"action.lua"`
}

// readOverrides reads an argocd-cm patch (a document with `data:`) with Argo CD's rules for the split
// keys resource.customizations.<type>.<group_kind>: `<group>_<Kind>` or `<Kind>` names the group/kind.
func readOverrides(patchFile string) (map[string]override, error) {
	raw, err := os.ReadFile(patchFile)
	if err != nil {
		return nil, err
	}
	var patch struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.UnmarshalStrict(raw, &patch); err != nil {
		return nil, fmt.Errorf("%s: %w", patchFile, err)
	}
	overrides := map[string]override{}
	for k, v := range patch.Data {
		parts := strings.SplitN(k, ".", 4)
		if !strings.HasPrefix(k, "resource.customizations.") || len(parts) < 4 {
			continue
		}
		key, err := overrideKey(parts[3])
		if err != nil {
			return nil, err
		}
		o := overrides[key]
		switch parts[2] {
		case "health":
			o.HealthLua = v
		case "useOpenLibs":
			o.UseOpenLibs = v == "true"
		case "actions":
			if err := yaml.UnmarshalStrict([]byte(v), &o.Actions); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		default:
			return nil, fmt.Errorf("resource customization type %s not supported", parts[2])
		}
		overrides[key] = o
	}
	return overrides, nil
}

func overrideKey(groupKind string) (string, error) {
	parts := strings.Split(groupKind, "_")
	switch {
	case len(parts) == 2:
		return parts[0] + "/" + parts[1], nil
	case len(parts) == 1 && groupKind != "":
		return groupKind, nil
	}
	return "", fmt.Errorf("group kind should be <group>_<Kind> or <Kind>, got %q", groupKind)
}

// groupKind is the object's override key: "<group>/<Kind>", or "<Kind>" for the core group.
func groupKind(obj map[string]any) (string, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return "", fmt.Errorf("object without apiVersion and kind")
	}
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return kind, nil
	}
	return group + "/" + kind, nil
}
