package media

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // AWS, GCP, Azure metadata
		{"169.254.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd00:ec2::254", true}, // AWS metadata over IPv6
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff05::2", true},
		{"100.64.0.1", true},
		{"100.100.100.200", true}, // Alibaba metadata
		{"100.127.255.255", true},
		{"192.0.0.192", true}, // Oracle metadata
		{"198.18.0.1", true},
		{"255.255.255.255", true},
		{"240.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::127.0.0.1", true},        // IPv4-compatible
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::8.8.8.8", true}, // local-use NAT64
		{"2002:7f00:1::", true},      // 6to4 of 127.0.0.1
		{"2002:a00:1::", true},       // 6to4 of 10.0.0.1
		// Every range of IANA's special-purpose registries that is not
		// globally reachable, and the deprecated ones.
		{"0.0.0.8", true},                              // 0.0.0.0/8 this network
		{"10.255.255.255", true},                       // 10.0.0.0/8
		{"127.255.255.254", true},                      // 127.0.0.0/8
		{"169.254.255.255", true},                      // 169.254.0.0/16
		{"172.16.0.0", true},                           // 172.16.0.0/12
		{"192.0.0.0", true},                            // 192.0.0.0/24 IETF protocol assignments, 192.0.0.0/29 service continuity
		{"192.0.0.8", true},                            // 192.0.0.8/32 IPv4 dummy address
		{"192.0.0.170", true},                          // 192.0.0.170/32 NAT64 discovery
		{"192.0.0.171", true},                          // 192.0.0.171/32 DNS64 discovery
		{"192.0.2.1", true},                            // 192.0.2.0/24 TEST-NET-1
		{"192.88.99.1", true},                          // 192.88.99.0/24 deprecated 6to4 relay anycast
		{"192.168.255.255", true},                      // 192.168.0.0/16
		{"198.19.255.255", true},                       // 198.18.0.0/15 benchmarking
		{"198.51.100.7", true},                         // 198.51.100.0/24 TEST-NET-2
		{"203.0.113.9", true},                          // 203.0.113.0/24 TEST-NET-3
		{"239.0.0.1", true},                            // 224.0.0.0/4 multicast
		{"254.1.2.3", true},                            // 240.0.0.0/4 reserved
		{"::ffff:192.0.2.1", true},                     // ::ffff:0:0/96 mapped: judged by the IPv4 address
		{"64:ff9b::c000:201", true},                    // 64:ff9b::/96 NAT64 of 192.0.2.1
		{"64:ff9b:1:ffff::1", true},                    // 64:ff9b:1::/48 local-use NAT64
		{"100::1", true},                               // 100::/64 discard-only
		{"100:0:0:1::1", true},                         // 100:0:0:1::/64 dummy prefix (outside 2000::/3)
		{"2001::1", true},                              // 2001::/32 Teredo
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true}, // Teredo, a server and client inside
		{"2001:2::1", true},                            // 2001:2::/48 benchmarking
		{"2001:10::1", true},                           // 2001:10::/28 deprecated ORCHID
		{"2001:20::1", true},                           // 2001:20::/28 ORCHIDv2 (inside 2001::/23)
		{"2001:1ff:ffff::1", true},                     // the end of 2001::/23
		{"2001:db8::1", true},                          // 2001:db8::/32 documentation
		{"3fff::1", true},                              // 3fff::/20 documentation
		{"3fff:fff:ffff::1", true},                     // the end of 3fff::/20
		{"5f00::1", true},                              // 5f00::/16 segment routing SIDs
		{"fc00::", true},                               // fc00::/7 unique local
		{"fdff:ffff::1", true},                         // fc00::/7
		{"febf::1", true},                              // fe80::/10 link-local
		{"fec0::1", true},                              // fec0::/10 site-local (deprecated)
		{"feff::1", true},                              // fec0::/10
		{"ff0e::1", true},                              // ff00::/8 multicast
		{"4000::1", true},                              // outside 2000::/3: reserved by the IETF
		{"1::1", true},                                 // likewise
		{"2002:c000:201::", true},                      // 6to4 of 192.0.2.1
		{"::192.0.2.1", true},                          // IPv4-compatible form of TEST-NET-1
		{"192.31.196.1", false},                        // 192.31.196.0/24 AS112: globally reachable
		{"192.52.193.1", false},                        // 192.52.193.0/24 AMT: globally reachable
		{"192.175.48.1", false},                        // 192.175.48.0/24 AS112: globally reachable
		{"2001:200::1", false},                         // just past 2001::/23
		{"2001:db9::1", false},                         // just past 2001:db8::/32
		{"2620:4f:8000::1", false},                     // 2620:4f:8000::/48 AS112: globally reachable
		{"3fff:1000::1", false},                        // just past 3fff::/20
		{"192.0.1.255", false},                         // just before 192.0.2.0/24
		{"198.51.101.0", false},                        // just past 198.51.100.0/24
		{"203.0.112.255", false},                       // just before 203.0.113.0/24
		{"8.8.8.8", false},                             // public
		{"1.1.1.1", false},                             // public
		{"172.32.0.1", false},                          // just past 172.16/12
		{"100.63.255.255", false},                      // just before 100.64/10
		{"100.128.0.0", false},                         // just past 100.64/10
		{"169.255.0.1", false},                         // just past 169.254/16
		{"2606:4700:4700::1111", false},
		{"2a00:1450:4001::200e", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:808:808::", false},   // 6to4 of 8.8.8.8
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkAddr(netip.MustParseAddr(tt.addr))
			if got := errors.Is(err, ErrBlocked); got != tt.blocked {
				t.Errorf("blocked: got %v (%v), want %v", got, err, tt.blocked)
			}
		})
	}
	if err := checkAddr(netip.Addr{}); !errors.Is(err, ErrBlocked) {
		t.Errorf("zero Addr: got %v, want ErrBlocked", err)
	}
}

func TestDialControl(t *testing.T) {
	control := dialControl(func(ap netip.AddrPort) error { return checkAddr(ap.Addr()) })
	tests := []struct {
		network, address string
		blocked          bool
	}{
		{"tcp4", "127.0.0.1:80", true},
		{"tcp6", "[::1]:443", true},
		{"tcp4", "10.0.0.1:443", true},
		{"tcp4", "169.254.169.254:80", true},
		{"tcp6", "[fe80::1%eth0]:80", true},
		{"tcp4", "no address", true}, // what cannot be checked is refused
		{"tcp4", "8.8.8.8:443", false},
		{"tcp6", "[2606:4700:4700::1111]:443", false},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			err := control(tt.network, tt.address, nil)
			if got := errors.Is(err, ErrBlocked); got != tt.blocked {
				t.Errorf("blocked: got %v (%v), want %v", got, err, tt.blocked)
			}
		})
	}
}
