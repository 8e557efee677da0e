package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// newState is a Lua state as Argo CD's util/lua prepares one for argocd-cm scripts (useOpenLibs
// unset): no standard library but package, base and table; then Argo CD's "safe os" step, which
// with gopher-lua registers its functions under the name of the already loaded `table` module and
// so adds nothing; `os` (time and date only) exists solely through require("os"); `obj` and an
// empty `actionParams` as globals; a 1 s deadline.
func newState(obj map[string]any, openLibs bool) (*lua.LState, context.CancelFunc) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, func(l *lua.LState) int { l.Push(l.RegisterModule(lua.TabLibName, safeOs(l))); return 1 }},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		mod := l.NewTable()
		for name, fn := range safeOs(l) {
			mod.RawSetString(name, l.NewFunction(fn))
		}
		l.Push(mod)
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.NewTable())
	l.SetGlobal("obj", toLua(l, obj))
	return l, cancel
}

// safeOs is gopher-lua's own os.time and os.date (what Argo CD's safe os implements), taken from
// gopher-lua's os library opened in a scratch state.
func safeOs(_ *lua.LState) map[string]lua.LGFunction {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	lua.OpenOs(scratch)
	os := scratch.GetGlobal(lua.OsLibName).(*lua.LTable)
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = os.RawGetString(name).(*lua.LFunction).GFunction
	}
	return funcs
}

// toLua converts decoded JSON as Argo CD's decodeValue does.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("not a JSON value: %T", value))
}

// runScript runs script on obj and returns its result as JSON (nil when it returned nil).
func runScript(obj map[string]any, script string, openLibs bool) ([]byte, error) {
	l, cancel := newState(obj, openLibs)
	defer cancel()
	defer l.Close()
	if err := l.DoString(script); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = "" // as Argo CD: the user sees the message, not the Go stack
			return nil, apiErr
		}
		return nil, err
	}
	result := l.Get(-1)
	switch result.Type() {
	case lua.LTNil:
		return nil, nil
	case lua.LTTable:
		return luajson.Encode(result)
	}
	return nil, fmt.Errorf("expect table output from Lua script, not %s", result.Type())
}

var healthStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Healthy": true, "Suspended": true, "Degraded": true, "Missing": true,
}

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

func health(o override, obj map[string]any) (any, error) {
	if o.HealthLua == "" {
		return nil, errors.New("no health customization")
	}
	out, err := runScript(obj, o.HealthLua, o.UseOpenLibs)
	if err != nil || out == nil {
		return healthStatus{}, err
	}
	status := healthStatus{}
	if err := json.Unmarshal(out, &status); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && string(out) == "[]" { // an empty table
			return healthStatus{}, nil
		}
		return nil, err
	}
	if !healthStatuses[status.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return status, nil
}

type resourceAction struct {
	Name        string `json:"name,omitempty"`
	Disabled    bool   `json:"disabled,omitempty"`
	IconClass   string `json:"iconClass,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

func discovery(o override, obj map[string]any) (any, error) {
	if o.Actions.DiscoveryLua == "" {
		return nil, errors.New("no action discovery script provided")
	}
	// Actions never use the open libraries (the API server builds a plain VM for them).
	out, err := runScript(obj, o.Actions.DiscoveryLua, false)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("expect table output from Lua script, not nil")
	}
	found := []resourceAction{}
	if string(out) == "[]" {
		return found, nil
	}
	var table map[string]any
	if err := json.Unmarshal(out, &table); err != nil {
		return nil, fmt.Errorf("error unmarshaling action table: %w", err)
	}
	for name, value := range table {
		action := resourceAction{Name: name}
		if settings, ok := value.(map[string]any); ok {
			raw, _ := json.Marshal(settings)
			if err := json.Unmarshal(raw, &action); err != nil {
				return nil, fmt.Errorf("error unmarshaling resource action: %w", err)
			}
			action.Name = name
		}
		found = append(found, action)
	}
	sortActions(found)
	return found, nil
}

func action(o override, obj map[string]any, name string) (any, error) {
	var script string
	for _, d := range o.Actions.Definitions {
		if d.Name == name {
			script = d.ActionLua
		}
	}
	if script == "" {
		return nil, fmt.Errorf("action %s is not defined for this resource", name)
	}
	out, err := runScript(obj, script, false)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("expect table output from Lua script, not nil")
	}
	if len(out) < 2 || out[0] == '[' {
		return nil, fmt.Errorf("action %s returned a list of resources, expected the object itself", name)
	}
	var newObj map[string]any
	if err := json.Unmarshal(out, &newObj); err != nil {
		return nil, err
	}
	newObj = restoreEmptyMaps(newObj, obj)
	liveBytes, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	newBytes, err := json.Marshal(newObj)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.CreateMergePatch(liveBytes, newBytes)
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return map[string]any{"operation": "patch", "object": newObj, "mergePatch": json.RawMessage(patch)}, nil
}

// restoreEmptyMaps undoes Lua's one kind of empty table: where the live object had a map and the
// script returned an empty array, the map comes back (Argo CD's cleanReturnedObj), recursively.
func restoreEmptyMaps(newObj, obj map[string]any) map[string]any {
	for key, old := range obj {
		switch n := newObj[key].(type) {
		case map[string]any:
			if o, ok := old.(map[string]any); ok {
				newObj[key] = restoreEmptyMaps(n, o)
			}
		case []any:
			switch o := old.(type) {
			case map[string]any:
				if len(n) == 0 {
					newObj[key] = map[string]any{}
				}
			case []any:
				newObj[key] = restoreEmptyMapsInList(n, o)
			}
		}
	}
	return newObj
}

func restoreEmptyMapsInList(newList, list []any) []any {
	for i := range newList {
		if i >= len(list) {
			break
		}
		switch n := newList[i].(type) {
		case map[string]any:
			if o, ok := list[i].(map[string]any); ok {
				newList[i] = restoreEmptyMaps(n, o)
			}
		case []any:
			if o, ok := list[i].([]any); ok {
				newList[i] = restoreEmptyMapsInList(n, o)
			}
		}
	}
	return newList
}
