package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthURL(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/healthz"},
		{"[::]:8080", "http://[::1]:8080/healthz"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080/healthz"},
		{"localhost:8080", "http://localhost:8080/healthz"},
	} {
		got, err := healthURL(tt.addr)
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	if _, err := healthURL("8080"); err == nil || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Errorf("healthURL(8080): got %v, want an error naming HTTP_ADDR", err)
	}
}

// parley health succeeds when /healthz answers 200 on HTTP_ADDR, and fails
// when nothing answers or something else does.
func TestHealthCommand(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	m, out, _ := testMain(t, map[string]string{"HTTP_ADDR": addr})
	if err := m.Run(context.Background(), []string{"health"}); err != nil || out.String() != "ok\n" {
		t.Errorf("health of a live server: %v, output %q", err, out)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := m.Run(context.Background(), []string{"health"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("health of a failing server: got %v, want an error with its 503", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	m, _, _ = testMain(t, map[string]string{"HTTP_ADDR": dead})
	if err := m.Run(context.Background(), []string{"health"}); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("health with nothing listening: got %v, want an error naming %s", err, dead)
	}
}

// The process exits 0 or 1, as a HEALTHCHECK reads it.
func TestHealthProcess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if stdout, stderr, code := runProcess(t, "health", "HTTP_ADDR="+srv.Listener.Addr().String()); code != 0 || stdout != "ok\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and ok", code, stdout, stderr)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if _, stderr, code := runProcess(t, "health", "HTTP_ADDR="+dead); code != 1 || !strings.HasPrefix(stderr, "parley: health: ") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", code, stderr)
	}
}
