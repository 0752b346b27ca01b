package slacktest

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// LoopbackTransport returns an HTTP transport that dials loopback addresses
// only, without proxies: tests never reach the network.
func LoopbackTransport() *http.Transport {
	d := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("slacktest: refusing to dial %s: tests stay on loopback", address)
			}
			return nil
		},
	}
	return &http.Transport{DialContext: d.DialContext, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 16}
}

// RefuseNonLoopback makes http.DefaultTransport dial loopback only; call it
// from TestMain.
func RefuseNonLoopback() {
	http.DefaultTransport = LoopbackTransport()
}
