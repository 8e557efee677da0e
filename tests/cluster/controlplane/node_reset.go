package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	remote "k8s.io/cri-client/pkg"
)

// runNodeReset stops and removes every pod sandbox a container runtime holds, through the
// CRI as the kubelet itself would: the runtime kills the containers and their shims, tears
// down each sandbox's network through CNI (veth, IPAM lease, portmap rules) and unmounts its
// network namespace. The local cluster calls it after the kubelet stopped, so that nothing of
// the node's Pods is left on the machine.
func runNodeReset() int {
	fs := flag.NewFlagSet("node-reset", flag.ExitOnError)
	endpoint := fs.String("runtime-endpoint", "", "CRI endpoint, e.g. unix:///run/x/containerd.sock (required)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	_ = fs.Parse(os.Args[1:])
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "node-reset: --runtime-endpoint is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	runtime, err := remote.NewRemoteRuntimeService(*endpoint, *timeout, nil, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node-reset: connect to %s: %v\n", *endpoint, err)
		return 1
	}
	sandboxes, err := runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node-reset: list pod sandboxes: %v\n", err)
		return 1
	}
	failed := 0
	for _, sandbox := range sandboxes {
		name := sandbox.GetMetadata().GetNamespace() + "/" + sandbox.GetMetadata().GetName()
		if err := runtime.StopPodSandbox(ctx, sandbox.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "node-reset: stop sandbox %s (%s): %v\n", sandbox.GetId(), name, err)
			failed++
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, sandbox.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "node-reset: remove sandbox %s (%s): %v\n", sandbox.GetId(), name, err)
			failed++
			continue
		}
		fmt.Fprintf(os.Stderr, "node-reset: removed sandbox %s (%s)\n", sandbox.GetId(), name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
