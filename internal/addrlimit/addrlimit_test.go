package addrlimit

import (
	"net"
	"testing"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestKey(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.7:5222"), "192.0.2.7/32"},
		{tcp("[::ffff:192.0.2.7]:5222"), "192.0.2.7/32"},
		{tcp("[2001:db8:1:2:aaaa::1]:5222"), "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2::9"), Port: 3478}, "2001:db8:1:2::/64"},
		{&net.IPAddr{IP: net.ParseIP("198.51.100.1")}, ""}, // not IP:port: not limited
	} {
		k, ok := Key(c.addr)
		got := ""
		if ok {
			got = k.String()
		}
		if got != c.want {
			t.Errorf("Key(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestAcquire(t *testing.T) {
	l := New(2)
	a1, ok1 := l.Acquire(tcp("[2001:db8::1]:1"))
	_, ok2 := l.Acquire(tcp("[2001:db8::2]:2")) // same /64
	if !ok1 || !ok2 {
		t.Fatal("the first two connections of an address were refused")
	}
	if _, ok := l.Acquire(tcp("[2001:db8::3]:3")); ok {
		t.Fatal("a third connection from the same /64 was allowed")
	}
	if _, ok := l.Acquire(tcp("[2001:db8:0:1::1]:3")); !ok {
		t.Fatal("another /64 was refused")
	}
	a1()
	a1() // a second release gives back nothing more
	if _, ok := l.Acquire(tcp("[2001:db8::3]:3")); !ok {
		t.Fatal("a place given back was not reused")
	}
	if _, ok := l.Acquire(tcp("[2001:db8::4]:4")); ok {
		t.Fatal("releasing twice gave back two places")
	}
	if got := l.Refused(); got != 2 {
		t.Fatalf("Refused() = %d, want 2", got)
	}
	if _, ok := New(0).Acquire(tcp("192.0.2.1:1")); !ok {
		t.Fatal("a limiter with no maximum refused")
	}
	var none *Limiter
	if _, ok := none.Acquire(tcp("192.0.2.1:1")); !ok {
		t.Fatal("a nil limiter refused")
	}
}
