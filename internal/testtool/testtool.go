// Package testtool finds the outside programs integration tests drive (real
// XMPP clients, coturn's tools, node, chromium). A missing program skips the
// test, with how to install it, unless CHATD_TEST_REQUIRE_TOOLS is set (CI
// sets it), in which case the test fails: CI can never pass without them.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Path returns the absolute path of program (a name looked up in PATH, or a
// path), or skips or fails the test as the package describes.
func Path(t testing.TB, program, install string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	msg := program + " not found; " + install
	if os.Getenv("CHATD_TEST_REQUIRE_TOOLS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Python returns Debian's python3 when it can import module (a pyenv or
// virtualenv python3 earlier in PATH usually cannot see Debian's packages),
// or skips or fails the test.
func Python(t testing.TB, module, install string) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import "+module).Run() == nil {
			return path
		}
	}
	msg := "python3 with " + module + " not found; " + install
	if os.Getenv("CHATD_TEST_REQUIRE_TOOLS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
