package media

import (
	"net/netip"
	"syscall"
)

// Ranges refused besides those net/netip names (loopback, private,
// link-local, multicast, unspecified).
var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT; Alibaba's metadata service is 100.100.100.200
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	ietf      = netip.MustParsePrefix("192.0.0.0/24") // IETF protocol assignments; Oracle's metadata service is 192.0.0.192
	benchmark = netip.MustParsePrefix("198.18.0.0/15")
	reserved  = netip.MustParsePrefix("240.0.0.0/4") // reserved and broadcast
	// IPv6 forms that carry an IPv4 address a gateway or the kernel may
	// route to: the address inside must pass the IPv4 rules.
	ipv4Compat = netip.MustParsePrefix("::/96")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// checkAddr returns an error matching ErrBlocked when a is not a public
// unicast address: loopback, private (RFC 1918, fc00::/7), link-local
// (169.254/16 with the 169.254.169.254 metadata address, fe80::/10),
// unspecified, multicast, carrier-grade NAT, or another reserved range.
// IPv6 addresses that embed an IPv4 address (mapped, IPv4-compatible,
// NAT64, 6to4) are judged by that address.
func checkAddr(a netip.Addr) error {
	if !a.IsValid() {
		return blocked("not an IP address")
	}
	if why := notPublic(a); why != "" {
		return blocked("%s", why)
	}
	return nil
}

// notPublic says why a is not a public address, "" when it is.
func notPublic(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		var inner netip.Addr
		b := a.As16()
		switch {
		case a.IsUnspecified() || a.IsLoopback():
			// ::/96 would judge them as 0.0.0.0 and 0.0.0.1.
		case ipv4Compat.Contains(a), nat64.Contains(a):
			inner = netip.AddrFrom4([4]byte(b[12:16]))
		case nat64Local.Contains(a):
			return a.String() + " is a local NAT64 address"
		case sixToFour.Contains(a):
			inner = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if inner.IsValid() {
			if why := notPublic(inner); why != "" {
				return a.String() + " carries " + why
			}
			return ""
		}
	}
	var kind string
	switch {
	case a.IsUnspecified(), a.Is4() && thisNet.Contains(a):
		kind = "an unspecified address"
	case a.IsLoopback():
		kind = "a loopback address"
	case a.IsPrivate():
		kind = "a private address"
	case a == netip.AddrFrom4([4]byte{169, 254, 169, 254}):
		kind = "the cloud metadata address"
	case a.IsLinkLocalUnicast():
		kind = "a link-local address"
	case a.IsMulticast():
		kind = "a multicast address"
	case cgnat.Contains(a):
		kind = "a carrier-grade NAT address"
	case ietf.Contains(a), benchmark.Contains(a), reserved.Contains(a):
		kind = "a reserved address"
	default:
		return ""
	}
	return a.String() + " is " + kind
}

// dialControl is the net.Dialer's Control: it runs after DNS resolution,
// on the very address about to be connected, for the first request and
// every redirect alike. Checking here rather than on the URL's host is what
// defeats DNS rebinding (a name that resolves to a public address when
// checked and to 127.0.0.1 when connected) and redirects to internal hosts.
func dialControl(check func(netip.AddrPort) error) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return blocked("%s address %q cannot be checked", network, address)
		}
		return check(ap)
	}
}
