package media

import (
	"net/netip"
	"syscall"
)

// special lists the ranges of IANA's special-purpose address registries
// (https://www.iana.org/assignments/iana-ipv4-special-registry and
// iana-ipv6-special-registry) that are not globally reachable, with the
// deprecated ranges of the address space registries, and what to call
// them. A range whose registry entry is globally reachable but which sits
// inside a refused one (the anycast addresses of 192.0.0.0/24 and
// 2001::/23) is refused with it: no media is served from there.
//
// Outside these, IPv6 is public only inside 2000::/3, the global unicast
// space: the rest of the IPv6 space is unassigned or reserved (100::/64,
// 5f00::/16, fec0::/10, ...), except the forms that carry an IPv4 address,
// which are judged by it.
var special = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"}, // "this network"
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"}, // Alibaba's metadata service is 100.100.100.200
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.169.254/32"), "the cloud metadata address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"}, // IETF protocol assignments; Oracle's metadata service is 192.0.0.192
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address"}, // deprecated 6to4 relay anycast (RFC 7526)
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address"}, // benchmarking
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"}, // reserved, and the broadcast address

	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address"},
	{netip.MustParsePrefix("2001::/23"), "a reserved address"}, // IETF protocol assignments: benchmarking, ORCHID, ...
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("5f00::/16"), "a segment routing address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"}, // unique local; AWS's metadata service is fd00:ec2::254
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// IPv6 forms that carry an IPv4 address a gateway or the kernel may route
// to: the address inside must pass the IPv4 rules.
var (
	ipv4Compat    = netip.MustParsePrefix("::/96")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	globalUnicast = netip.MustParsePrefix("2000::/3")
)

// checkAddr returns an error matching ErrBlocked when a is not a public
// unicast address: any range of special that is not globally reachable
// (loopback, private, link-local with the metadata address, carrier-grade
// NAT, documentation, benchmarking, Teredo, site-local, multicast,
// reserved), or IPv6 outside the global unicast space. IPv6 addresses that
// embed an IPv4 address (mapped, IPv4-compatible, NAT64, 6to4) are judged
// by that address.
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
	for _, s := range special {
		if s.prefix.Contains(a) {
			return a.String() + " is " + s.kind
		}
	}
	if a.Is6() && !globalUnicast.Contains(a) {
		return a.String() + " is a reserved address"
	}
	return ""
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
