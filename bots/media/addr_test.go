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
		{"8.8.8.8", false},           // public
		{"1.1.1.1", false},           // public
		{"172.32.0.1", false},        // just past 172.16/12
		{"100.63.255.255", false},    // just before 100.64/10
		{"100.128.0.0", false},       // just past 100.64/10
		{"169.255.0.1", false},       // just past 169.254/16
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
