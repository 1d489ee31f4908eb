package xmpp_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"chatd/internal/xmpptest"
	"chatd/xmpp"
	"chatd/xmpp/stanza"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts with what the server answers now")

// Golden transcripts (testdata/*.xmpp) record exact exchanges: blocks of
// what the client sends (">>>") followed by what the server answers ("<<<",
// one element per line, with random values masked). The test replays the
// client side against a fresh server over plain TCP (TLS is not required for
// these) and compares. Run with -update to rewrite them after an intended
// change, and review the diff.
//
// In client blocks, {alice} and {bob} expand to the users' local parts and
// {alicepw} to alice's password in base64 PLAIN form.
func TestGoldenTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xmpp")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".xmpp"), func(t *testing.T) {
			e := startEnv(t, func(c *xmpp.Config) { c.RequireTLS = false })
			alice, bob := e.NewUser("alice"), e.NewUser("bob")
			vars := strings.NewReplacer(
				"{alice}", strings.TrimSuffix(alice.JID, "@localhost"),
				"{bob}", strings.TrimSuffix(bob.JID, "@localhost"),
				"{alicepw}", xmpptest.B64([]byte("\x00"+strings.TrimSuffix(alice.JID, "@localhost")+"\x00"+alice.Password)),
			)
			blocks := readTranscript(t, file)
			conn, err := net.DialTimeout("tcp", e.Server.TCPAddr().String(), xmpptest.Wait)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			events := make(chan string, 256)
			go readNormalized(conn, events)
			var out strings.Builder
			for _, b := range blocks {
				out.WriteString(">>>\n" + b.send + "\n<<<\n")
				conn.SetWriteDeadline(time.Now().Add(xmpptest.Wait))
				if _, err := conn.Write([]byte(vars.Replace(b.send))); err != nil && !*update {
					t.Fatalf("sending %q: %v", b.send, err)
				}
				var got []string
				for len(got) < len(b.expect) || (*update && len(got) < 64) {
					select {
					case line, ok := <-events:
						if !ok {
							goto done
						}
						got = append(got, line)
					case <-time.After(map[bool]time.Duration{true: 300 * time.Millisecond, false: xmpptest.Wait}[*update]):
						goto done
					}
				}
			done:
				for _, line := range got {
					out.WriteString(line + "\n")
				}
				if !*update && strings.Join(got, "\n") != strings.Join(b.expect, "\n") {
					t.Errorf("after\n  %s\ngot\n  %s\nwant\n  %s", b.send, strings.Join(got, "\n  "), strings.Join(b.expect, "\n  "))
				}
			}
			if *update {
				header := transcriptHeader(t, file)
				if err := os.WriteFile(file, []byte(header+out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type block struct {
	send   string
	expect []string
}

// transcriptHeader returns the comment lines at the top of a transcript.
func transcriptHeader(t *testing.T, file string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func readTranscript(t *testing.T, file string) []block {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	mode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case line == ">>>":
			blocks = append(blocks, block{})
			mode = "send"
		case line == "<<<":
			mode = "expect"
		case line == "":
		case mode == "send":
			blocks[len(blocks)-1].send += line
		case mode == "expect":
			blocks[len(blocks)-1].expect = append(blocks[len(blocks)-1].expect, line)
		}
	}
	return blocks
}

var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`id='[0-9a-f]{24}'`), "id='STREAM'"},
	{regexp.MustCompile(`/chatd-[0-9a-f]{16}`), "/RESOURCE"},
	{regexp.MustCompile(`srvping-[0-9a-f]+`), "srvping-ID"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "TIME"},
	{regexp.MustCompile(`\b\d+-\d+@localhost`), "USER@localhost"},
	{regexp.MustCompile(`seconds="\d+"`), `seconds="N"`},
}

// readNormalized turns what the server sends into comparable lines.
func readNormalized(conn net.Conn, out chan<- string) {
	defer close(out)
	p := stanza.NewParser(conn, 1<<20)
	for {
		conn.SetReadDeadline(time.Now().Add(xmpptest.Wait))
		ev, err := p.Next()
		var line string
		switch {
		case err != nil:
			return
		case ev.Kind == stanza.KindOpen:
			line = fmt.Sprintf("HEADER from='%s' id='%s' version='%s'", ev.Element.Attr("from"), ev.Element.Attr("id"), ev.Element.Attr("version"))
		case ev.Kind == stanza.KindClose:
			line = "END"
		default:
			line = ev.Element.String()
		}
		for _, m := range masks {
			line = m.re.ReplaceAllString(line, m.with)
		}
		out <- line
		if ev.Kind == stanza.KindClose {
			return
		}
		if ev.Kind == stanza.KindElement && ev.Element.Name == "success" {
			// SASL success restarts the stream: a new parser reads on.
			rest := append([]byte(nil), p.Buffered()...)
			p = stanza.NewParser(io.MultiReader(bytes.NewReader(rest), conn), 1<<20)
		}
	}
}
