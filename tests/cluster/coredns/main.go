// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the
// plugins modeldeploy's local cluster uses: it answers `<svc>.<ns>.svc.cluster.local` for Pods
// on the real node, as a cluster's DNS add-on does. See docs/local-cluster.md.
package main

import (
	"github.com/coredns/coredns/coremain"

	// The plugins named in the Corefile that tests/cluster/dns.py writes; each registers itself.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
