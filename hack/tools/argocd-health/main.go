// Command argocd-health runs an Argo CD resource health check the way Argo CD does: the script is Lua run by
// gopher-lua (the VM Argo CD embeds), with the resource decoded from JSON into the global table `obj`, and the
// table it returns read as {status, message}. It reads the resource as JSON on stdin and prints the result as JSON.
//
//	argocd-health SCRIPT.lua < resource.json
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < resource.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var obj map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&obj); err != nil {
		fail(fmt.Errorf("reading the resource: %w", err))
	}
	status, err := run(string(script), obj)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(status); err != nil {
		fail(err)
	}
}

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func run(script string, obj map[string]any) (healthStatus, error) {
	// Argo CD opens only package, base and table (and a restricted os, which no check here uses and this runner
	// leaves out, so a script needing it fails here first), and gives a script one second.
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return healthStatus{}, err
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	var hs healthStatus
	if s, ok := table.RawGetString("status").(lua.LString); ok {
		hs.Status = string(s)
	}
	if m, ok := table.RawGetString("message").(lua.LString); ok {
		hs.Message = string(m)
	}
	return hs, nil
}

// toLua converts a decoded JSON value as Argo CD does: objects and arrays become tables (arrays 1-based), numbers
// LNumber, null nil.
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		table := L.NewTable()
		for _, item := range v {
			table.Append(toLua(L, item))
		}
		return table
	case map[string]any:
		table := L.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", value))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-health:", err)
	os.Exit(1)
}
