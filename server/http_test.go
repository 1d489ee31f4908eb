package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that sends its headers, then trickles its body, is cut once the
// read timeout passes: the handler's read fails and the connection ends,
// instead of being held for as long as the client likes.
func TestSlowBodyIsCut(t *testing.T) {
	defer func(d time.Duration) { httpReadTimeout = d }(httpReadTimeout)
	httpReadTimeout = 300 * time.Millisecond
	s := &Server{log: slog.New(slog.DiscardHandler), errc: make(chan error, 8)}
	readErr := make(chan error, 1)
	addr, err := s.serveHTTP("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read a whole body the client never sent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server was still reading the trickled body after 10 s")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, bufio.NewReader(conn)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the connection stayed open")
		}
	}
}
