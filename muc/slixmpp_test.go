package muc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/xmpptest"
)

// python finds a Python with slixmpp (Debian's python3-slixmpp lives in
// /usr/bin/python3; a python3 earlier on PATH may lack it). Without one the
// test is skipped, unless CHATD_TEST_REQUIRE_TOOLS is set.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import slixmpp").Run() == nil {
			return path
		}
	}
	if os.Getenv("CHATD_TEST_REQUIRE_TOOLS") != "" {
		t.Fatal("python3 with slixmpp is required (CHATD_TEST_REQUIRE_TOOLS is set)")
	}
	t.Skip("python3 with slixmpp not found")
	return ""
}

// slixmpp's XEP-0045 plugin against the service, over STARTTLS on a real
// socket: a room created by joining, configured by its owner, a member
// added, messages both ways, a leave, history on join, a member removed
// (301), the room destroyed.
func TestSlixmpp(t *testing.T) {
	py := python(t)
	e := startEnv(t, envOptions{})
	alice, bob := e.NewUser("alice"), e.NewUser("bob")
	room := strconv.FormatInt(e.App.ID, 10) + "_slixroom@muc." + xmpptest.Domain
	cfg, _ := json.Marshal(map[string]any{
		"host":  "127.0.0.1",
		"port":  e.Server.TCPAddr().(*net.TCPAddr).Port,
		"room":  room,
		"alice": map[string]string{"jid": alice.JID, "password": alice.Password, "id": alice.ID},
		"bob":   map[string]string{"jid": bob.JID, "password": bob.Password, "id": bob.ID},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, py, "testdata/slixmpp_muc.py", string(cfg)).CombinedOutput()
	t.Logf("slixmpp (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("slixmpp scenario failed: %v", err)
	}
	// The room's dialog was deleted with the room.
	if _, err := e.History.RoomDialog(context.Background(), e.App.ID, "slixroom"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("dialog after destroy: %v", err)
	}
}
